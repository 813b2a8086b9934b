-- CreateEntity's idempotency keys, kept apart from the entities (issue 10, defect 2).
-- A key stays spent after its entity is deleted: a retry then says so instead of
-- creating the entity again, and the key's row never disappears between a retry's
-- insert and its read (the race that answered INTERNAL when the key lived on the
-- entity's row). Rows are never deleted: whoever adds a retention purge must keep a
-- key at least as long as a client may retry with it.
CREATE TABLE create_requests (
    owner_id uuid NOT NULL,
    request_id uuid NOT NULL,
    -- the entity the first request created (it may have been deleted since)
    entity_id uuid NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, request_id)
);

INSERT INTO create_requests (owner_id, request_id, entity_id, created_at)
SELECT owner_id, request_id, id, created_at FROM entities WHERE request_id IS NOT NULL;

-- its unique index entities_owner_request goes with it
ALTER TABLE entities DROP COLUMN request_id;
