-- Event positions come from a sequence, so that event-writing transactions no longer wait
-- for the counter row's lock until they commit; readers respect a fence instead (see
-- docs/architecture.md, "The event log"). The sequence continues where the counter ended;
-- the counter row stays, unused, for a downgrade.
CREATE SEQUENCE event_seq;
SELECT setval('event_seq', last_seq, true) FROM event_counter WHERE id = 1 AND last_seq > 0;
