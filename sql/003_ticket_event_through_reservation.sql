-- 003: a ticket's event is checked through its reservation. ordered_tickets had two
-- foreign keys, reservation_id -> reservations and event_id -> events, and PostgreSQL
-- checks each with a SELECT ... FOR KEY SHARE per ticket inserted: at a sale's peak a
-- third of the database's CPU went to foreign-key checks, most of them these two
-- (bench/README.md, issue 14), every ticket of a sale locking the same events row. One
-- composite key replaces both: (reservation_id, event_id) -> reservations (id, event_id)
-- says the ticket's reservation exists *and* that the ticket names that reservation's
-- event (which the two keys did not), and the reservation's own key says the event
-- exists. One check per ticket instead of two, for one more index entry per reservation.
CREATE UNIQUE INDEX reservations_id_event_idx ON reservations (id, event_id);
ALTER TABLE ordered_tickets
    ADD CONSTRAINT ordered_tickets_reservation_event_fkey FOREIGN KEY (reservation_id, event_id)
        REFERENCES reservations (id, event_id) ON DELETE CASCADE;
ALTER TABLE ordered_tickets DROP CONSTRAINT ordered_tickets_reservation_id_fkey;
ALTER TABLE ordered_tickets DROP CONSTRAINT ordered_tickets_event_id_fkey;
