CREATE TABLE tag_uses (
    tag  text PRIMARY KEY,
    uses bigint NOT NULL
);
