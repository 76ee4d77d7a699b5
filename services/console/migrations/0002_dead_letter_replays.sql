-- Replays of dead letters made through the console (page or API): who, when. A letter is
-- replayed once unless the operator forces it again; every replay is a row. failed_at is the
-- letter's own: a topic deleted and created again (or a broker that keeps topics in memory)
-- reuses offsets, and a new letter at an old place must not look replayed.
CREATE TABLE dead_letter_replays (
    id          bigserial   PRIMARY KEY,
    letter_id   text        NOT NULL,
    failed_at   timestamptz NOT NULL,
    principal   text        NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    forced      boolean     NOT NULL
);
CREATE INDEX dead_letter_replays_letter ON dead_letter_replays (letter_id, failed_at, id DESC);
