-- The AMC instances this deployment runs on: the account ids AMC's headers need, the region
-- whose API host serves it, whether it is a sandbox (its runs must ask for synthetic data),
-- the user whose token manages its workflows, and limits that override the global ones.
CREATE TABLE instances (
    instance_id          text        PRIMARY KEY,
    advertiser_id        text        NOT NULL,
    marketplace_id       text        NOT NULL,
    region               text        NOT NULL DEFAULT 'NA' CHECK (region IN ('NA', 'EU', 'FE')),
    sandbox              boolean     NOT NULL DEFAULT false,
    user_id              text,
    name                 text,
    max_running          integer     CHECK (max_running > 0),
    requests_per_second  double precision CHECK (requests_per_second > 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Every version of a saved workflow pushed through the poller: the SQL and parameter
-- definitions as sent to AMC. Pushing the text of the latest version again adds nothing.
CREATE TABLE workflow_versions (
    instance_id       text        NOT NULL,
    workflow_id       text        NOT NULL,
    version           integer     NOT NULL CHECK (version > 0),
    sql_query         text        NOT NULL,
    input_parameters  jsonb       NOT NULL DEFAULT '[]',
    sha256            text        NOT NULL,
    author            text        NOT NULL,
    pushed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (instance_id, workflow_id, version)
);

-- Which pushed version an execution ran (NULL: an ad hoc run, or a workflow made elsewhere).
ALTER TABLE executions ADD COLUMN workflow_version integer;
