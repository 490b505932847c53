-- cronq schema for PostgreSQL, version 6: ids made by the database (a
-- plain INSERT's default, `cronq_enqueue`) grow with time, as the daemon's
-- own do (`new_id` in src/store/job.rs): 8 base-36 digits of milliseconds
-- since 2020, then 7 random, still 15 characters [a-z0-9]. The queue's
-- primary key and the history's id index then grow at their end instead
-- of at random pages (docs/PERFORMANCE.md, "Ids that grow with time").
CREATE OR REPLACE FUNCTION cronq_new_id() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    digits constant text := '0123456789abcdefghijklmnopqrstuvwxyz';
    ms bigint := greatest(0, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint
                             - 1577836800000);
    id text := '';
BEGIN
    FOR i IN 1..8 LOOP
        id := substr(digits, 1 + (ms % 36)::int, 1) || id;
        ms := ms / 36;
    END LOOP;
    FOR i IN 1..7 LOOP
        id := id || substr(digits, 1 + floor(random() * 36)::int, 1);
    END LOOP;
    RETURN id;
END
$$;
