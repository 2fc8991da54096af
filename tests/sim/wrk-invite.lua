-- wrk script for invited-sim: POST one invitation per request, with a
-- distinct address each time. Needs SIM_TOKEN (a token from the simulator).
--   SIM_TOKEN=... wrk -t1 -c100 -d10s -s wrk-invite.lua http://127.0.0.1:PORT
-- bench-sim.sh does all of that.
local token = os.getenv("SIM_TOKEN") or ""
local threads = 0
local counter = 0

function setup(thread)
	threads = threads + 1
	thread:set("thread_no", threads)
end

wrk.method = "POST"
wrk.path = "/v1.0/invitations"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

function request()
	counter = counter + 1
	local body = string.format(
		'{"invitedUserEmailAddress":"guest%d.%d@example.com",' ..
		'"inviteRedirectUrl":"https://myapps.microsoft.com",' ..
		'"invitedUserDisplayName":"Guest %d","sendInvitationMessage":true}',
		thread_no or 0, counter, counter)
	return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
	io.write(string.format("non-2xx/3xx responses: %d, socket errors: %d\n",
		summary.errors.status,
		summary.errors.connect + summary.errors.read + summary.errors.write +
		summary.errors.timeout))
end
