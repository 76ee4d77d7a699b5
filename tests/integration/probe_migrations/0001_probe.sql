CREATE TABLE seen (
    event_id   uuid PRIMARY KEY,
    request_id text NOT NULL,
    seq        int  NOT NULL,
    trace_id   text
);
