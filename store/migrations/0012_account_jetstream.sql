-- Whether an application account has JetStream enabled (accounts.conf
-- 'jetstream: enabled'), which MQTT clients need. It was a hand edit of
-- accounts.conf before, which the next account change erased; now it is
-- data, written into the file by every rewrite.
ALTER TABLE accounts ADD COLUMN jetstream INTEGER NOT NULL DEFAULT 0 CHECK (jetstream IN (0, 1));
