-- The audience of given events (the fan-out and the live stream join it by event):
-- without this index every such read scanned the whole table, and grew with the log.
CREATE INDEX event_audience_seq ON event_audience (seq, account_id);
