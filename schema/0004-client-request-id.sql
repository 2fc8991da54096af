-- invited store, version 4: the client-request-id each row's last attempt
-- was sent with (a GUID of ours, GRAPH.md §3), kept next to Graph's
-- request-id so that a support case can name both.
ALTER TABLE rows ADD COLUMN client_request_id TEXT;
