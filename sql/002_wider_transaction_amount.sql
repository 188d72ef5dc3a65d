-- 002: a transaction pays for every ticket of a reservation: up to TICKETD_MAX_PER_TYPE
-- tickets of each of up to 64 types at a price of up to 999,999,999.99. numeric(12,2)
-- could not hold such a total, and one such row stopped the writer's batches (found by
-- tests/integration/test_hostile_input.c). numeric(18,2) holds any total ticketd accepts.
ALTER TABLE transactions ALTER COLUMN amount TYPE numeric(18,2);
