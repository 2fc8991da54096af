-- invited store, version 5: many tenants (SPEC §7). tenants.name is the
-- configuration's [tenant NAME] ("default" for a file with one [graph]
-- tenant =); directory keeps the tenant id or domain a row was renamed from
-- when a wave-1 database is adopted (store_tenant_adopt): jobs keep their
-- tenant_id, so nothing else moves.
ALTER TABLE tenants ADD COLUMN directory TEXT;
