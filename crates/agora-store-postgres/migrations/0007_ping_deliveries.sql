-- A ping (POST /webhooks/{id}/ping) is logged as a delivery of its endpoint, but it is no
-- entry of the event log: its delivery has no event.
ALTER TABLE webhook_deliveries ALTER COLUMN event_seq DROP NOT NULL;
