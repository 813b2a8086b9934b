CREATE TABLE entities (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    -- idempotency key of CreateEntity, unique per owner when given
    request_id uuid,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- ListEntities pages through one owner's entities in (created_at, id) order.
CREATE INDEX entities_owner_order ON entities (owner_id, created_at, id);
CREATE UNIQUE INDEX entities_owner_request ON entities (owner_id, request_id)
    WHERE request_id IS NOT NULL;
