#!lua name=ticketd
--[[
ticketd.lua: the Redis Functions library that owns every inventory change of
ticketd (Redis 7.0, loaded with FUNCTION LOAD REPLACE, embedded in the binary).

Every function checks everything first and writes only after that, so a call
that is refused changes nothing. The one exception is the lazy expiry of holds
that are already past their deadline (tk_reserve, tk_reserve_batch, tk_get,
tk_cancel, tk_pay_start). tk_avail is read-only (no-writes, callable with FCALL_RO, so a replica
can serve it): the figures it reads are the sweeper's, which returns expired holds
within a second of their deadline.
Those holds would be released anyway, so releasing them early is not a change a
caller could tell apart from the sweeper having run. Time comes from
redis.call('TIME'), in unix milliseconds.

Redis at maxmemory (noeviction) refuses every function without 'allow-oom' or
'no-writes'. Three functions carry 'allow-oom', because they are how memory comes
back: tk_persisted (acknowledges and deletes persisted outbox entries), tk_expire
(returns expired holds to sale and forgets persisted records) and tk_dead_letter
(moves an entry between two streams). Refusing them would keep a full Redis full
for good: the outbox could never shrink once PostgreSQL caught up. A fourth,
tk_pay_finish, records what the payment gateway answered: refused while tk_expire
runs, a charge approved during the shortage would be timed out by the sweeper
and recorded as failed. A buyer's reads and cancel (tk_get, tk_view, tk_cancel) run
too: they write only what frees a hold (its lazy expiry, its cancellation), as
tk_expire does, and a full store must not hide a paid reservation or keep a buyer
from giving tickets back. New holds and payments (tk_reserve, tk_pay_start) are
refused at the limit, which is what pauses the sale.

KEY LAYOUT (ready for Redis Cluster: all keys of one call share one hash tag)
  A shard s is the first 4 lower-case hex characters of the event uuid E.
  Reservation ids R start with the shard of their event, so every key can be
  built from R alone.
  tk:{s}:inv  hash, the inventory of every event in the shard. E = event uuid,
              T = ticket type name:
                E:T:cap  E:T:avail  E:T:held  E:T:sold  (ticket counts)
                E:T:price        integer minor units (cents)
                E:types          cjson array of type names in creation order
                E:date           event date, unix ms
                E:cancelled      tickets returned by cancellation
                E:expired        tickets returned by expiry
                E:revenue        minor units (kept by payments, later)
                dm:E:away  dm:E:failed  dm:E:soldout  dm:E:hist
                                 demand figures for the organiser, not inventory
                                 (see DEMAND FIGURES below)
  tk:{s}:res  hash, R -> reservation record, msgpack of the map
                {"e":E, "st":"PENDING"|"PAYING"|"COMPLETED"|"CANCELLED",
                 "c":created_ms, "u":until_ms,
                 "t":[[ticket_uuid,T,price],...] one entry per ticket, in request
                                                order (its lines, merged per type in
                                                first-seen order, are rec_lines)
                 "k":C                          the fair-use client, while PENDING/PAYING
                 "a":until_ms                   held through a waiting-room admission
                                                that lasts until then: once CANCELLED
                                                and persisted the record is kept that
                                                long (forget_persisted), so the
                                                admission may hold again
                 "q":1                          its tickets are counted in held-ticket
                                                buckets (PENDING holds since 2026-12)
                 "x":{"id":T,"st":"PENDING"|"COMPLETED"|"ERROR","amt":minor,
                      "d":started_ms,"err":message} the latest transaction, if any}
              One encoding serves the record and its outbox entry's field "m"
              (rec_encode, outbox; the entry names R in its own field "r"). Records
              written before 2026-12 are cjson with a merged-lines field "l"; those of
              2026-12-01 to -07 also carry "r". They are read alike (rec_decode) and
              rewritten as today's.
  tk:{s}:dl   sorted set, the deadlines, three kinds of member each in its own score
              range (read by range, never mixed):
              hold lists  member "h:U:R1 R2 ...", score U - HOLDS_BASE: the PENDING
                          holds one call made with the deadline U (HOLD LISTS below);
                          below every other member. "h:B:-" names no hold: it sweeps
                          the buckets an event's seed put at B (tk_event_init)
              buckets     member "q:B:E:T", score B - BUCKET_BASE (HELD-TICKET BUCKETS)
              holds       member R, score until_ms: one hold alone, as versions before
                          2026-12-07 indexed every hold (still read by the sweeper)
              A hold that leaves PENDING stays named in its list until the list is
              swept, which skips it; a PAYING reservation is in no list made after its
              payment started, so expiry never races a payment.
  tk:{s}:pay  sorted set of PAYING reservations: member R, score = the instant the
              gateway is given up on (the payment then fails as timed out).
  tk:{s}:ob   stream, the outbox: one entry per change PostgreSQL must learn, fields
              "r" = R and "m" = the record as stored in res (the writer reads
              e,st,c,u,t,x and ignores the rest), except that st is as the API shows it:
              PAYING is PENDING. (Entries of versions before 2026-12-07 have "m" alone,
              with "r":R inside it; the writer reads both.) Every entry is the whole
              reservation, so entries can be applied by several writers in any order of
              batches.
              Consumer group "writers" (OUTBOX_GROUP below; TK_OUTBOX_GROUP in
              engine/inventory.h).
  tk:{s}:tx   hash, transaction id T -> cjson {"r":R,"st":...,"err":...}. Transaction
              ids, like reservation ids, start with their shard.
  tk:{s}:gc   sorted set of persisted, finished records to forget: member "r:R" or
              "x:T", score = when to drop them from res / tx (reads then fall back to
              PostgreSQL).
  tk:{s}:dead stream, the dead letters: outbox entries PostgreSQL refused or that
              do not decode, moved here by tk_dead_letter for an operator; fields
              "id" (the entry's outbox id), "m" (its msgpack), "err" (the reason) and,
              when the entry had one, "r" (its reservation id).
  tk:{s}:fence  string, written ("1") by ticketd on Redis Cluster before it WAITs for a
              replica ahead of telling a shopper COMPLETED; never read, never touched by
              these functions.
  tk:catalog:version  (outside the shards) the catalog version, INCR'd by whoever
              changes the catalog; never touched by these functions.

  tk:{s}:wr   hash, the waiting rooms of the shard's events (section WAITING ROOM):
                E:cfg   cjson {"en":0|1, "o":opens_ms, "r":per_minute, "a":admission_s,
                               "seg":[[from_ms, base, per_minute], ...]} the admission line
                E:seq   joins so far; a joiner's ticket is the value after its HINCRBY
                E:pre   joins before the opening, frozen once at the opening
                E:seed  hex seed of the opening shuffle, written once at the opening
  tk:{s}:wa   hash, admission -> reservation: "E:ticket" -> R, the live hold of each
              admission; the key expires with the last admission it serves.
  tk:wr:rooms set of event ids that have a waiting room (one key of its own, read by
              every process's room refresher; outside the shard layout).

  FAIR USE (optional, per shard; see tk_reserve). C is a client id: hex, a keyed hash of
  the client's address made by ticketd, never the address itself.
  tk:{s}:inv  also "cl:C" = the client's live (PENDING or PAYING) holds in the shard; a
              reservation made for a client carries "k":C, and the transition out of
              PENDING (release, finish_payment) takes it back. The field is deleted at 0.
  tk:{s}:rt   sorted set, member C, score = the client's theoretical arrival time in ms
              (GCRA: rate r per second, bursts of 2r). A member whose score has passed
              is a client with a full bucket, so members are dropped once their score is
              in the past and the set holds only clients seen in the last two seconds.

HELD-TICKET BUCKETS: how a mass expiry is back on sale at once. Every PENDING
hold made by this version ("q":1) also counts its tickets, per event and type, in
the bucket of its deadline's 100 ms slot (BUCKET_MS): tk:{s}:inv field "q:B:E:T" =
tickets, B the deadline rounded up to a multiple of 100 ms, indexed in dl (above).
When B passes, tk_expire moves a whole bucket from held to avail in one step,
however many holds share it, and finalizes the holds themselves (record CANCELLED,
client place, outbox entry) a batch per call. A hold is never back on sale before
its deadline (B >= it) and reads CANCELLED from its deadline on (load_live); a
hold finalized before its bucket is swept (a read, the sweeper's call at its own
deadline) takes its tickets out of the bucket and moves them itself, as do a
cancel and a payment start; a failed payment back to PENDING puts them back. A
hold whose bucket field is gone was released with the bucket, so its finalization
moves no tickets: a bucket's count is always exactly the tickets of the "q" holds
still in it.

HOLD LISTS: how the deadlines cost a member per call, not per hold. The holds one
call makes with the same deadline U (all of them, with the usual single hold time: a
call has one "now") are indexed by one dl member naming them all, "h:U:R1 R2 ...",
due at U exactly: tk_expire finalizes the holds still PENDING and drops the member (a
batch of 25 holds costs one zset entry, not 25; a hold id may not contain a space).
Nothing takes a hold out of its list; whatever left PENDING is skipped, and a failed
payment back to PENDING gets a list of its own. A hold is never finalized twice: the
records are re-read in the sweep and a hold named twice in one sweep is taken once.
Versions before 2026-12-07 do not know the lists: going back to one drops them unswept
(their holds' tickets still go back with their buckets, but the records stay PENDING, in
Redis and in PostgreSQL, until read), so such a rollback wants the lists swept first.

INVARIANT, per event and type, at every instant: avail + held + sold == cap.

FUNCTIONS. KEYS are always tk:{s}:inv, res, dl, pay, ob, tx, gc, in that order.
A malformed call (wrong keys, an id outside the keys' shard, non-numeric control
arguments, a wrong argument count) is a bug in the caller. It gets an error
reply, "ERR ticketd: ...". Outcomes that come from user input are arrays,
{"OK",...} or {"ERR",reason,...}.

  tk_event_init  ARGV E, date_ms, ntypes, then ntypes triples T, cap, price_minor,
                 then optionally what PostgreSQL knows of E's tickets (the event is
                 new to this Redis, which may have lost it): revenue_minor, nlines,
                 nlines quadruples T, "sold"|"held", n, until_ms (until_ms of a held
                 line: its holds' deadline, when its tickets go back on sale; 0 for
                 sold). Applied only when the shard did not know E, so a Redis that
                 lost its data does not sell again what PostgreSQL says was sold or is
                 held. Idempotent: every field is set with HSETNX, and the seed only
                 with the event's first initialisation.
                 -> integer ntypes
  tk_avail       ARGV E                          (flags no-writes: FCALL_RO)
                 -> {T1, avail1, T2, avail2, ...} in E:types order, avail as
                    integers; {} when the event is unknown. No lazy expiry: holds
                    past their deadline count as held until the sweeper (tk_expire)
                    releases them, within a second.
  tk_reserve     ARGV E, R, hold_ms, max_per_type, nlines, nlines pairs T, amount,
                 then one ticket uuid per ticket, in request-line order
                 -> {"OK", created_ms, until_ms}
                  | {"ERR","bad_amount",T}   amount not an integer >= 1
                  | {"ERR","empty"}          nlines == 0
                  | {"ERR","no_event"} | {"ERR","past"} | {"ERR","exists"}
                  | {"ERR","unknown_type",T} | {"ERR","limit",T}
                  | {"ERR","insufficient",T,avail}
                 Checked in that order. Lines with the same type are merged
                 (amounts summed, first-seen order) before the type checks. The
                 type checks are unknown_type over all lines, then limit over all
                 lines, then insufficient for the first short line. The number of
                 ticket uuids (it must equal sum(amount)) is checked only once
                 every business check has passed, so a refused request may carry
                 fewer uuids.
                 Fair use and backpressure (optional): with an 8th key tk:{s}:rt, ARGV
                 starts with four more arguments, C, max_holds, rate, outbox_limit (C
                 may be empty: no client; 0 turns a limit off), then the usual ones.
                 After the malformed checks and lazy expiry it answers
                  | {"ERR","paused",retry_s}   XLEN tk:{s}:ob >= outbox_limit
                  | {"ERR","too_many",retry_s} C holds max_holds live holds in the
                                               shard, or asks faster than rate
                 The rate check counts the request even when a later check refuses it
                 (it limits requests, not holds), the one write a refused call makes.
                 With one more key tk:{s}:wa (the last, after tk:{s}:rt when both are
                 given), ARGV ends with admission_until_ms and the admission
                 "E:ticket": the hold is refused with {"ERR","admission_used"} (after
                 "exists") while the admission's previous hold is PENDING, PAYING or
                 COMPLETED, or is no longer in Redis (a CANCELLED one stays as long as
                 its admission, see "a" above; a missing one may have been paid).
  tk_reserve_batch  KEYS the shard's seven, then tk:{s}:rt and tk:{s}:wa (always both)
                 ARGV n, then per request: nargs, fair (0|1), admission (0|1) and the
                 nargs arguments tk_reserve takes with (fair) its four fair-use
                 arguments first and (admission) its two admission arguments last.
                 Group commit (RESERVING below): every request is held or refused as
                 tk_reserve would, in the order given, each seeing the stock the
                 earlier ones left. -> n answers, each exactly tk_reserve's (an error
                 reply for a malformed request; its neighbours are unaffected). A
                 malformed batch (keys, counts, flags) is refused whole, changing
                 nothing.
  tk_get         ARGV R   (a PENDING hold at or past its deadline expires first)
                 -> {"OK", record_json} | {"ERR","not_found"}   (the record as cjson:
                    a view for tests and operators; ticketd reads tk_view)
  tk_view        ARGV R   (same lazy expiry) the reservation as the API shows it
                 -> {"OK", status, E, created_ms, until_ms, then per ticket
                     ticket_uuid, T, price_minor} | {"ERR","not_found"}
                 status is public_status(st): PAYING reads as PENDING
  tk_cancel      ARGV R   (same lazy expiry first; only PENDING can be cancelled)
                 -> {"OK"} | {"ERR","not_found"} | {"ERR","state",current_status}
  tk_expire      ARGV limit [, "next"]
                 When some hold is due, moves up to BUCKETS_PER_HOLD x `limit` due
                 held-ticket buckets back on sale, then releases the holds of the
                 shard whose deadline <= now, whole hold lists up to about `limit`
                 holds (then holds indexed alone, up to `limit` in all); fails
                 payments whose gateway deadline passed, and forgets up to `limit`
                 persisted records whose grace ran out. Holds no longer PENDING are
                 only dropped from dl. Each of dl, pay and gc is read past its first
                 entry only when that entry is due, so a shard with nothing due
                 costs four reads of a first entry (dl's first hold list and first
                 hold alone), and one with none of the three keys a single EXISTS.
                 -> integer number of holds released from dl, their records now
                    CANCELLED (their tickets may have gone back before, with their
                    bucket; holds released because their payment timed out past
                    until are counted in E:expired, not here)
                 With "next": -> {released, next_ms}, next_ms the earliest instant
                    a hold in dl, pay and gc is due (when the shard next has
                    work), -1 when all three are empty. The sweeper skips a shard
                    until then.
  tk_pay_start   ARGV R, T, gateway_timeout_ms
                 PENDING -> PAYING (leaves its buckets, enters pay) with a new transaction T.
                 -> {"OK", T, amount_minor} | {"EXISTS", T'} (T', another payment, is in flight)
                  | {"ERR","not_found"} | {"ERR","state",status}
                 Idempotent on T: while R is PAYING with T itself, the call answers
                 {"OK", T, amount_minor} again and changes nothing (the gateway deadline
                 stays), so a caller whose reply was lost repeats it with the same T to
                 learn that the payment is its own to charge. T used for anything else
                 (another reservation, a payment already settled) is a Redis error.
  tk_pay_finish  ARGV R, T, "ok"|"fail", error_message
                 PAYING -> COMPLETED (tickets held -> sold, revenue) or back to
                 PENDING (transaction ERROR; expired at once if past until_ms).
                 -> {"OK", status} | {"ERR","stale",status} (T is not in flight)
  tk_txn         ARGV T  (no-writes) -> {"OK", status, error or ""} | {"ERR","not_found"}
  tk_idem_claim  KEYS tk:idem:<sha256 of method, path and key>
                 ARGV claim_ms, fingerprint (of the body), token (of this claim)
                 (outside the shard layout: one hash of its own, fields f = the
                 fingerprint, o = the token of the live claim, a = the answer)
                 -> {"CLAIMED"} (run the request) | {"BUSY"} (the first is still running)
                  | {"DONE", stored_answer} (replay it)
                  | {"MISMATCH"} (the key was used with another body)
  tk_idem_store  KEYS as tk_idem_claim  ARGV token, ttl_ms, answer
                 The claim's owner records its answer, kept ttl_ms.
                 -> {"OK"} | {"ERR","not_claimed"} (the claim lapsed or is not ours)
  tk_idem_release KEYS as tk_idem_claim  ARGV token
                 The claim's owner gives the key back unanswered (an answer not to
                 remember: malformed, refused for load, a failure), so a corrected
                 retry runs and a squatter's bad request poisons nothing.
                 -> {"OK"} | {"ERR","not_claimed"}
  tk_persisted   ARGV grace_ms, nids, stream ids..., members for gc ("r:R"/"x:T")
                 After a writer committed: XACK + XDEL the ids, schedule the
                 finished records to be forgotten after grace_ms. -> nids
  tk_dead_letter KEYS tk:{s}:ob, tk:{s}:dead (its own two keys)  ARGV id, reason
                 Moves outbox entry id to the dead letters in one step: XACK in
                 the group, XADD {id, m, err} to dead, XDEL from ob. An entry no
                 longer in ob is only acknowledged.
                 -> 1 (moved) | 0 (not in ob)
  tk_turned_away ARGV E, n
                 Adds n to dm:E:away: hold requests a ticketd process refused from its
                 sold-out memory without asking (engine/soldout.h), reported twice a
                 second. -> n | 0 unknown event
  tk_sample      ARGV E, step_ms, max_samples
                 Appends one sample of E to dm:E:hist unless the newest sample is
                 in the same step_ms bucket (so several processes sampling at once
                 add one), keeping the newest max_samples.
                 -> 1 appended | 0 not due | {} unknown event
  tk_stats       ARGV E [, "demand"]  (flags no-writes, so it can be called with FCALL_RO)
                 With "demand", the reply below is followed by the demand figures:
                 away, failed, soldout_ms (0: not yet), nsamples, then nsamples
                 samples of 6 integers {t_ms, sold, held, avail, away, failed},
                 oldest first (DEMAND FIGURES).
                 -> {} when the event is unknown, else the flat array
                    {capacity, available, held, sold, cancelled, expired, revenue,
                     ntypes, lag_ms, T1, cap1, avail1, held1, sold1, T2, cap2, ...}
                    lag_ms: age of the oldest outbox entry not yet persisted (0: none)
                    (totals over all types first, then 5 entries per type in
                     E:types order; everything but the names is an integer)

WAITING ROOM FUNCTIONS. KEYS is the one key tk:{s}:wr. They answer the room's
state as a flat array of integers and one string (the shuffle seed):
  STATE = enabled (0|1), opens_ms, per_minute, admission_s, joined, pre (-1 before
          the opening), seed ("" before the opening), nseg, then nseg triples
          from_ms, base, per_minute (the admission line, oldest first)
  tk_wr_set   ARGV E, enabled, opens_ms, per_minute, admission_s
              Stores the settings. Before the opening the line is replaced; after
              it, a change applies WR_SCHEDULE_MS from now so that every process
              knows it first. -> STATE
  tk_wr_join  ARGV E, seed_hex
              -> {"OFF", admission_s} when the event has no room or it is off
               | {"JOIN", ticket, STATE...}
  tk_wr_sync  ARGV E, seed_hex  (every process, every 200 ms, per room)
              Opens the room when due and keeps the admission line from running
              ahead of the queue. -> STATE | {} when the event has no room
  Opening: the first call at or after the line's first instant freezes pre = the
  joins so far and stores the seed it was given (HSET once, guarded by E:pre): one
  owner decides the shuffle for everyone. Tickets 1..pre are then placed by the
  seeded shuffle every process computes alike (engine/waitroom.c); later tickets
  keep their arrival order behind them (place = ticket).
]]

local EXPIRE_BATCH = 200 -- lazy expiry bound per call
local OUTBOX_GROUP = 'writers' -- the writers' consumer group on every tk:{s}:ob

-- parse_decimal returns the integer that s spells in plain decimal, and nil for
-- anything else ('1.5', '1e3', ' 1', '0x10', 'abc', more than 15 digits: exact in a
-- double).
local function parse_decimal(s)
    if type(s) ~= 'string' then
        return nil
    end
    local digits = string.match(s, '^%-?(%d+)$')
    if not digits or #digits > 15 then
        return nil
    end
    return tonumber(s)
end

-- parse_int is parse_decimal, nil also for values below min. A reservation call parses
-- eight numbers per request, nearly all of them the same few strings (amounts, the hold,
-- the limits), and parsing was an eighth of a hold's cost: answers are remembered, at
-- most INT_MEMO_MAX strings (then forgotten all at once). A cache of a pure function of
-- the string (min is applied after it): no answer depends on earlier calls.
local INT_MEMO_MAX = 1024
local int_memo, int_memo_size = {}, 0
local function parse_int(s, min)
    local n = int_memo[s] -- reading t[nil] is allowed; only strings are stored
    if n == nil then
        n = parse_decimal(s) or false
        if type(s) == 'string' then
            if int_memo_size == INT_MEMO_MAX then
                int_memo, int_memo_size = {}, 0
            end
            int_memo[s], int_memo_size = n, int_memo_size + 1
        end
    end
    if not n or (min and n < min) then
        return nil
    end
    return n
end

local function now_ms()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function bad_call(msg)
    return redis.error_reply('ERR ticketd: ' .. msg)
end

-- keys_shard checks that KEYS are exactly the seven keys of one shard and
-- returns that shard. An id whose prefix is not this shard would be stored
-- where no later call could find it.
local KEY_NAMES = { 'inv', 'res', 'dl', 'pay', 'ob', 'tx', 'gc' }
local BAD_KEYS = 'keys must be tk:{s}:inv, res, dl, pay, ob, tx, gc'

local function keys_shard(keys)
    if #keys ~= #KEY_NAMES then
        return nil
    end
    local s = string.match(keys[1], '^tk:{([0-9a-f][0-9a-f][0-9a-f][0-9a-f])}:inv$')
    if not s then
        return nil
    end
    for i, name in ipairs(KEY_NAMES) do
        if keys[i] ~= 'tk:{' .. s .. '}:' .. name then
            return nil
        end
    end
    return s
end

-- outbox appends the whole reservation to the shard's stream, for the writer that
-- persists it to PostgreSQL. Called by every transition, inside the same call.
-- public_status is a status as the API (and PostgreSQL) show it: a reservation
-- whose payment is in flight is still PENDING to everyone outside this library.
-- This is the only place that rule is written.
local function public_status(st)
    return st == 'PAYING' and 'PENDING' or st
end

-- rec_decode reads a stored record: msgpack, or cjson as versions before 2026-12
-- wrote it (a cjson object starts with '{'; a msgpack map never does).
local function rec_decode(blob)
    if string.byte(blob, 1) == 123 then
        local rec = cjson.decode(blob)
        rec.l = nil -- the lines those versions kept are the tickets' (rec_lines)
        return rec
    end
    return cmsgpack.unpack(blob)
end

-- rec_encode returns the record as stored in tk:{s}:res: without its id, which is the
-- field's name (records of earlier versions carry it; it is dropped when rewritten).
local function rec_encode(rec)
    rec.r = nil
    return cmsgpack.pack(rec)
end

-- outbox appends a change of rec (record rid) to the shard's stream: the id as field r,
-- the record as field m. blob is rec as rec_encode made it: the same bytes serve the
-- record and its outbox entry (no copy, no splice), unless the status is not public
-- (PAYING), when the entry says PENDING.
local function outbox(keys, rid, rec, blob)
    local st = rec.st
    if public_status(st) ~= st then
        rec.st = public_status(st)
        blob = cmsgpack.pack(rec)
        rec.st = st
    end
    redis.call('XADD', keys[5], '*', 'r', rid, 'm', blob)
end

-- rec_store writes the record of rid and appends the change to the outbox.
local function rec_store(keys, rid, rec)
    local blob = rec_encode(rec)
    redis.call('HSET', keys[2], rid, blob)
    outbox(keys, rid, rec, blob)
end

-- rec_lines returns the record's tickets per type, {T, n} in first-seen order.
local function rec_lines(rec)
    local lines, at = {}, {}
    for _, ticket in ipairs(rec.t) do
        local t = ticket[2]
        local i = at[t]
        if i then
            lines[i][2] = lines[i][2] + 1
        else
            lines[#lines + 1] = { t, 1 }
            at[t] = #lines
        end
    end
    return lines
end

-- in_shard tells whether id is of shard s (its first four characters; found in place,
-- without making the prefix as a string: this runs twice per request).
local function in_shard(id, s)
    return type(id) == 'string' and #id > 4 and string.find(id, s, 1, true) == 1
end

-- count_down lowers by n a count of tk:{s}:inv that is deleted at 0: a client's live
-- holds ("cl:C") or a held-ticket bucket ("q:B:E:T", which also leaves the dl index).
local function count_down(keys, field, n)
    if redis.call('HINCRBY', keys[1], field, -n) <= 0 then
        redis.call('HDEL', keys[1], field)
        if string.sub(field, 1, 2) == 'q:' then
            redis.call('ZREM', keys[3], field)
        end
    end
end

-- client_release gives back the place a hold took in its client's live-hold count
-- (tk:{s}:inv "cl:C"). Called by the two transitions out of PENDING (release,
-- finish_payment); the record forgets its client, so no place is given back twice.
local function client_release(keys, rec)
    if rec.k then
        count_down(keys, 'cl:' .. rec.k, 1)
        rec.k = nil
    end
end

-- HELD-TICKET BUCKETS (see the header). A hold's bucket is swept at the end of the
-- BUCKET_MS slot of its deadline, never before the deadline. A bucket's score in dl is
-- that instant minus BUCKET_BASE (10^13 ms, the year 2286), below every hold's; scores
-- go to Redis as decimal strings, never as Lua numbers.
local BUCKET_MS = 100
local BUCKET_BASE = 10000000000000

-- bucket_at is the instant the bucket of a deadline is swept: the deadline rounded up
-- to a multiple of BUCKET_MS (exact: integers below 2^53).
local function bucket_at(until_ms)
    local over = until_ms % BUCKET_MS
    return over == 0 and until_ms or until_ms - over + BUCKET_MS
end

local function bucket_field(until_ms, e, t)
    return 'q:' .. string.format('%d', bucket_at(until_ms)) .. ':' .. e .. ':' .. t
end

local function bucket_score(until_ms)
    return string.format('%d', bucket_at(until_ms) - BUCKET_BASE)
end

-- bucket_parse reads a bucket field back: its sweep instant B, event and type.
local function bucket_parse(f)
    local at, e, t = string.match(f, '^q:(%d+):([^:]+):(.+)$')
    return tonumber(at), e, t
end

-- HOLD LISTS (see the header): one dl member per call and deadline, scored below the buckets.
local HOLDS_BASE = 2 * BUCKET_BASE

local function holds_score(at)
    return string.format('%d', at - HOLDS_BASE)
end

local function holds_member(at, rids)
    return 'h:' .. string.format('%d', at) .. ':' .. table.concat(rids, ' ')
end

-- holds_add indexes a list of PENDING holds whose deadline is at.
local function holds_add(keys, at, rids)
    redis.call('ZADD', keys[3], holds_score(at), holds_member(at, rids))
end

-- holds_named appends to out the hold ids a list member names.
local function holds_named(member, out)
    for rid in string.gmatch(string.match(member, '^h:%d+:(.*)$') or '', '[^ ]+') do
        out[#out + 1] = rid
    end
end

-- bucket_put counts a PENDING hold's tickets in the buckets of its deadline.
local function bucket_put(keys, rec)
    for _, line in ipairs(rec_lines(rec)) do
        local f = bucket_field(rec.u, rec.e, line[1])
        redis.call('HINCRBY', keys[1], f, line[2])
        redis.call('ZADD', keys[3], bucket_score(rec.u), f)
    end
    rec.q = 1
end

-- bucket_swept tells whether some bucket of a "q" hold is gone: swept back on sale,
-- so the hold is expired whatever the clock now says.
local function bucket_swept(keys, rec)
    if rec.q then
        for _, line in ipairs(rec_lines(rec)) do
            if redis.call('HEXISTS', keys[1], bucket_field(rec.u, rec.e, line[1])) == 0 then
                return true
            end
        end
    end
    return false
end

-- bucket_take takes a hold's tickets out of its buckets as it leaves PENDING. It
-- returns the lines {T, n} whose tickets the caller still has to move from held:
-- all of them for a hold without "q", none whose bucket was already swept.
local function bucket_take(keys, rec)
    local lines = rec_lines(rec)
    if not rec.q then
        return lines
    end
    rec.q = nil
    local still = {}
    for _, line in ipairs(lines) do
        local f = bucket_field(rec.u, rec.e, line[1])
        if redis.call('HEXISTS', keys[1], f) == 1 then
            count_down(keys, f, line[2])
            still[#still + 1] = line
        end
    end
    return still
end

-- fair_use_part reads the fair-use part of a tk_reserve request, the four arguments
-- C, max_holds, rate, outbox_limit at args[at]; key is the request's tk:{s}:rt (its
-- caller checked that it is the shard's, once per call). fu.bad is set when the part is
-- malformed.
local FAIR_USE_NARGS = 4
local BAD_FAIR_USE = 'fair use: 8th key tk:{s}:rt, ARGV C max_holds rate outbox_limit first'
local function fair_use_part(key, args, at)
    local fu = { key = key, client = args[at], max = parse_int(args[at + 1], 0), rate = parse_int(args[at + 2], 0),
        pause = parse_int(args[at + 3], 0) }
    fu.bad = type(fu.client) ~= 'string' or #fu.client > 64 or not string.find(fu.client, '^%x*$') or not fu.max or
        not fu.rate or not fu.pause
    return fu
end

-- release owns the PENDING -> CANCELLED transition, for cancellation and for
-- expiry alike. Every ticket goes back from held to avail, the event counter
-- `counter` ('cancelled' or 'expired') grows by the number of tickets (tickets whose
-- bucket was swept are back already); its hold list skips it from then on.
-- The caller has checked that rec is PENDING.
local function release(keys, rid, rec, counter)
    local inv = keys[1]
    local total = 0
    for _, line in ipairs(bucket_take(keys, rec)) do
        local t, n = line[1], line[2]
        redis.call('HINCRBY', inv, rec.e .. ':' .. t .. ':avail', n)
        redis.call('HINCRBY', inv, rec.e .. ':' .. t .. ':held', -n)
        total = total + n
    end
    if total > 0 then -- a swept bucket counted its tickets already
        redis.call('HINCRBY', inv, rec.e .. ':' .. counter, total)
    end
    client_release(keys, rec)
    rec.st = 'CANCELLED'
    rec_store(keys, rid, rec)
    redis.call('ZREM', keys[3], rid) -- indexed alone (earlier versions); a list skips it
    return total
end

-- bulk runs `cmd key args...` over the list in calls of at most BULK_ARGS
-- arguments (an even number, so field/value pairs stay together): Lua's unpack
-- has a limit, and one call for many members is much cheaper than one each.
local BULK_ARGS = 1000
local function bulk(cmd, key, list)
    local out = {}
    for i = 1, #list, BULK_ARGS do
        local part = redis.call(cmd, key, unpack(list, i, math.min(i + BULK_ARGS - 1, #list)))
        if type(part) == 'table' then
            for _, v in ipairs(part) do
                out[#out + 1] = v
            end
        end
    end
    return out
end

-- tally sums counter changes per field of tk:{s}:inv (delta), in first-seen order
-- (fields), so that a batch writes each field once (tally_write; a reservation call's
-- ledger is a tally too).
local function tally_new()
    return { delta = {}, fields = {} }
end

local function tally_add(tl, field, n)
    if not tl.delta[field] then
        tl.delta[field] = 0
        tl.fields[#tl.fields + 1] = field
    end
    tl.delta[field] = tl.delta[field] + n
end

-- tally_write applies the sums; the counts deleted at 0 (clients, buckets) go through
-- count_down.
local function tally_write(keys, tl)
    for _, field in ipairs(tl.fields) do
        local n = tl.delta[field]
        local prefix = string.sub(field, 1, 2)
        if n < 0 and (prefix == 'cl' or prefix == 'q:') then
            count_down(keys, field, -n)
        elseif n ~= 0 then
            redis.call('HINCRBY', keys[1], field, n)
        end
    end
end

-- sweep_buckets moves up to `limit` due held-ticket buckets (deadline <= now) from
-- held back to avail, counting their tickets expired: the part of an expiry a buyer
-- waits for, one step per bucket however many holds share it.
local function sweep_buckets(keys, now, limit)
    local due = redis.call('ZRANGEBYSCORE', keys[3], string.format('%d', -BUCKET_BASE),
        string.format('%d', now - BUCKET_BASE), 'LIMIT', 0, limit) -- above the hold lists
    if #due == 0 then
        return
    end
    local counts = bulk('HMGET', keys[1], due)
    local tl = tally_new()
    for i, f in ipairs(due) do
        local n = tonumber(counts[i])
        local _, e, t = bucket_parse(f)
        if n and n > 0 and e then
            tally_add(tl, e .. ':' .. t .. ':avail', n)
            tally_add(tl, e .. ':' .. t .. ':held', -n)
            tally_add(tl, e .. ':expired', n)
        end
    end
    tally_write(keys, tl)
    bulk('HDEL', keys[1], due)
    bulk('ZREM', keys[3], due)
end

-- due_holds returns the ids of the holds whose deadline passed, from the due hold lists
-- (whole lists, until there are `limit` ids or more) and, with `alone`, from the holds
-- indexed one by one, and the dl members they came from.
local function due_holds(keys, now, limit, alone)
    local rids, members = {}, {}
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', keys[3], '-inf', holds_score(now), 'LIMIT', 0, limit)) do
        if #rids >= limit then
            break
        end
        holds_named(m, rids)
        members[#members + 1] = m
    end
    if alone and #rids < limit then
        for _, rid in ipairs(redis.call('ZRANGEBYSCORE', keys[3], 0, now, 'LIMIT', 0, limit - #rids)) do
            rids[#rids + 1] = rid
            members[#members + 1] = rid
        end
    end
    return rids, members
end

-- expire_due, when some hold of the shard is past its deadline, first sweeps the due
-- buckets (up to BUCKETS_PER_HOLD * limit), then releases the holds of due hold lists,
-- whole lists up to about `limit` holds. With `alone` (the sweeper) it also releases
-- the holds indexed one by one by earlier versions. It is the sweeper's work. Calls
-- that read or change inventory also run it, bounded, so figures are right even when
-- the sweeper lags. Holds that are gone or no longer PENDING are skipped.
-- Each hold is released as release() would (tickets not yet swept, client place,
-- record, outbox entry), but the counters are summed per field and the records, the
-- reads and the deadline removals go in a few bulk calls.
local BUCKETS_PER_HOLD = 4 -- a bucket costs a fraction of a hold to sweep: 4x as many per call
local function expire_due(keys, now, limit, alone)
    local due, members = due_holds(keys, now, limit, alone)
    if #due == 0 then
        return 0 -- no bucket is due either: a bucket exists while a hold in it is not released
    end
    sweep_buckets(keys, now, limit * BUCKETS_PER_HOLD)
    local blobs = bulk('HMGET', keys[2], due)
    local tl = tally_new()
    local left = {} -- bucket field -> tickets still in it, false when swept (read once each)
    local records = {}
    local taken = {} -- a hold named twice (a failed payment's list) is released once
    local n = 0
    for i, rid in ipairs(due) do
        local rec = not taken[rid] and blobs[i] and rec_decode(blobs[i])
        if rec and rec.st == 'PENDING' then
            taken[rid] = true
            local total = 0
            for _, line in ipairs(rec_lines(rec)) do
                local t, k = line[1], line[2]
                local f = rec.q and bucket_field(rec.u, rec.e, t)
                if f and left[f] == nil then
                    left[f] = tonumber(redis.call('HGET', keys[1], f)) or false
                end
                if not f or left[f] then -- not swept with a bucket: its tickets move here
                    if f then
                        left[f] = left[f] - k
                        tally_add(tl, f, -k)
                    end
                    tally_add(tl, rec.e .. ':' .. t .. ':avail', k)
                    tally_add(tl, rec.e .. ':' .. t .. ':held', -k)
                    total = total + k
                end
            end
            if total > 0 then
                tally_add(tl, rec.e .. ':expired', total)
            end
            if rec.k then
                tally_add(tl, 'cl:' .. rec.k, -1)
                rec.k = nil
            end
            rec.q = nil
            rec.st = 'CANCELLED'
            local blob = rec_encode(rec) -- written below in one HSET with the others
            records[#records + 1] = rid
            records[#records + 1] = blob
            outbox(keys, rid, rec, blob)
            n = n + 1
        end
    end
    tally_write(keys, tl)
    bulk('HSET', keys[2], records)
    bulk('ZREM', keys[3], members)
    return n
end

-- load_live returns the decoded reservation rid, or nil. A PENDING hold that is
-- at or past its deadline is expired first, so a hold reads as CANCELLED from
-- that instant on, whether or not the sweeper has run; so is one whose bucket was
-- swept (its tickets are on sale again) should Redis's clock have stepped back.
local function load_live(keys, rid)
    if type(rid) ~= 'string' then
        return nil
    end
    local blob = redis.call('HGET', keys[2], rid)
    if not blob then
        return nil
    end
    local rec = rec_decode(blob)
    if rec.st == 'PENDING' and (now_ms() >= rec.u or bucket_swept(keys, rec)) then
        release(keys, rid, rec, 'expired')
    end
    return rec
end

--[[ DEMAND FIGURES, for the organiser's console. They live in fields of
tk:{s}:inv named dm:E:..., apart from the inventory fields E:..., and no
inventory figure depends on them:
  dm:E:away     hold requests refused because too few tickets were left
  dm:E:failed   payments that ended in an error (declined, gateway timeout)
  dm:E:soldout  unix ms of the first instant no ticket of any type was left to
                hold (set once; tickets that come back later do not clear it)
  dm:E:hist     cjson array of samples {t_ms, sold, held, avail, away, failed},
                oldest first, capped; written by tk_sample, which a background
                task of every ticketd process calls (engine/history.c)
Counting a refusal in dm:E:away is the one write a refused tk_reserve makes;
refusals ticketd answers from its sold-out memory arrive by tk_turned_away.]]
local SAMPLE_FIELDS = 6

local function demand_count(inv, e, what)
    redis.call('HINCRBY', inv, 'dm:' .. e .. ':' .. what, 1)
end

-- demand_note_soldout stamps dm:E:soldout the first time every type of e is at 0.
local function demand_note_soldout(inv, e, types_json, now)
    local types = cjson.decode(types_json)
    local fields = {}
    for i, t in ipairs(types) do
        fields[i] = e .. ':' .. t .. ':avail'
    end
    for _, v in ipairs(redis.call('HMGET', inv, unpack(fields))) do
        if (tonumber(v) or 0) > 0 then
            return
        end
    end
    redis.call('HSETNX', inv, 'dm:' .. e .. ':soldout', now)
end

-- demand_figures: {away, failed, soldout_ms, nsamples, samples...} for tk_stats.
local function demand_figures(inv, e)
    local p = 'dm:' .. e .. ':'
    local v = redis.call('HMGET', inv, p .. 'away', p .. 'failed', p .. 'soldout', p .. 'hist')
    local hist = v[4] and cjson.decode(v[4]) or {}
    local out = { tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, #hist }
    for _, sample in ipairs(hist) do
        for k = 1, SAMPLE_FIELDS do
            out[#out + 1] = tonumber(sample[k]) or 0
        end
    end
    return out
end

-- SEED_HOLD is the one hold a seeded hold list names: no record has it, so the list's
-- sweep returns its buckets' tickets and releases nothing else.
local SEED_HOLD = '-'

-- event_seed reads tk_event_init's optional seed (from ARGV index i on) into
-- {revenue, sold = {T = n}, held = {T = n}, lines = {{T, n, until_ms}}}, or nil and
-- the reason it is malformed.
local function event_seed(args, i, caps)
    local revenue, nlines = parse_int(args[i], 0), parse_int(args[i + 1], 0)
    if not revenue or not nlines or #args ~= i + 1 + 4 * nlines then
        return nil, 'seed: revenue_minor nlines {T sold|held n until_ms}*nlines'
    end
    local seed = { revenue = revenue, sold = {}, held = {}, lines = {} }
    for j = 0, nlines - 1 do
        local t, kind = args[i + 2 + 4 * j], args[i + 3 + 4 * j]
        local n, at = parse_int(args[i + 4 + 4 * j], 1), parse_int(args[i + 5 + 4 * j], 0)
        local into = kind == 'sold' and seed.sold or kind == 'held' and seed.held or nil
        if not caps[t] or not into or not n or not at then
            return nil, 'seed line ' .. (j + 1) .. ': unknown type, kind or count'
        end
        into[t] = (into[t] or 0) + n
        if kind == 'held' then
            seed.lines[#seed.lines + 1] = { t, n, at }
        end
    end
    for t, cap in pairs(caps) do
        if (seed.sold[t] or 0) + (seed.held[t] or 0) > cap then
            return nil, 'seed: more tickets of ' .. t .. ' sold and held than its capacity'
        end
    end
    return seed
end

local function tk_event_init(keys, args)
    local s = keys_shard(keys)
    if not s then
        return bad_call(BAD_KEYS)
    end
    local e = args[1]
    if not in_shard(e, s) then
        return bad_call('event id not in the keys\' shard')
    end
    local date = parse_int(args[2], 0)
    local ntypes = parse_int(args[3], 1)
    if not date or not ntypes or (#args ~= 3 + 3 * ntypes and #args < 5 + 3 * ntypes) then
        return bad_call('tk_event_init E date_ms ntypes {T cap price}*ntypes [seed]')
    end
    local names, caps = {}, {}
    for i = 1, ntypes do
        local t = args[1 + 3 * i]
        local cap = parse_int(args[2 + 3 * i], 0)
        if t == '' or caps[t] or not cap or not parse_int(args[3 + 3 * i], 0) then
            return bad_call('type ' .. i .. ': empty or duplicate name, or bad cap/price')
        end
        caps[t] = cap
        names[i] = t
    end
    local seed, why
    if #args > 3 + 3 * ntypes then
        seed, why = event_seed(args, 4 + 3 * ntypes, caps)
        if not seed then
            return bad_call(why)
        end
    end

    local inv = keys[1]
    if seed and redis.call('HEXISTS', inv, e .. ':types') == 0 then
        -- new to this shard: start from what PostgreSQL knows; the held tickets go back
        -- on sale at their holds' deadlines, through the buckets (the holds themselves
        -- were lost with the data, so nobody can pay them)
        for _, t in ipairs(names) do
            local sold, held = seed.sold[t] or 0, seed.held[t] or 0
            redis.call('HSET', inv, e .. ':' .. t .. ':avail', caps[t] - sold - held, e .. ':' .. t .. ':held', held,
                e .. ':' .. t .. ':sold', sold)
        end
        local lists = {}
        for _, line in ipairs(seed.lines) do
            local f = bucket_field(line[3], e, line[1])
            redis.call('HINCRBY', inv, f, line[2])
            redis.call('ZADD', keys[3], bucket_score(line[3]), f)
            lists[bucket_at(line[3])] = true
        end
        -- the sweep of a bucket follows a due hold list: one per bucket instant, naming
        -- SEED_HOLD (no record), due with the bucket
        for at in pairs(lists) do
            holds_add(keys, at, { SEED_HOLD })
        end
        redis.call('HSET', inv, e .. ':revenue', seed.revenue)
    end
    for i = 1, ntypes do
        local p = e .. ':' .. names[i] .. ':'
        local cap = args[2 + 3 * i]
        redis.call('HSETNX', inv, p .. 'cap', cap)
        redis.call('HSETNX', inv, p .. 'avail', cap)
        redis.call('HSETNX', inv, p .. 'held', 0)
        redis.call('HSETNX', inv, p .. 'sold', 0)
        redis.call('HSETNX', inv, p .. 'price', args[3 + 3 * i])
    end
    redis.call('HSETNX', inv, e .. ':types', cjson.encode(names))
    redis.call('HSETNX', inv, e .. ':date', args[2])
    redis.call('HSETNX', inv, e .. ':cancelled', 0)
    redis.call('HSETNX', inv, e .. ':expired', 0)
    redis.call('HSETNX', inv, e .. ':revenue', 0)
    return ntypes
end

local function event_types(inv, e)
    if type(e) ~= 'string' then
        return nil
    end
    local types = redis.call('HGET', inv, e .. ':types')
    return types and cjson.decode(types)
end

local function tk_avail(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local e = args[1]
    local types = event_types(keys[1], e)
    if not types then
        return {}
    end
    local fields = {}
    for i, t in ipairs(types) do
        fields[i] = e .. ':' .. t .. ':avail'
    end
    local vals = redis.call('HMGET', keys[1], unpack(fields))
    local out = {}
    for i, t in ipairs(types) do
        out[#out + 1] = t
        out[#out + 1] = tonumber(vals[i]) or 0
    end
    return out
end

local waitroom = {} -- admission checks for tk_reserve; filled in by the WAITING ROOM section

--[[ RESERVING. tk_reserve holds one request, tk_reserve_batch many requests of one
shard in one call (group commit: ticketd sends the requests of a shard that arrive in
one pass of its event loop together). Both run reserve_all, so one hold is one hold
whichever way it came: each request is all-or-nothing and answered on its own, in the
order given, and a later request sees the stock the earlier ones left.

What a call shares is read once and written once: the inventory fields go through a
ledger (values read with one HMGET, changes summed and written with one HINCRBY per
field at the end), the records with one HSET, the deadlines with one ZADD (a hold
list, HOLD LISTS), the
clients' rate with one ZADD; the lazy expiry and the outbox length are looked at once
per call. Only the outbox entry is written per request, one entry each.]]

-- ledger_new: one call's view of tk:{s}:inv. base holds the values read (false: the
-- field is absent), delta the changes not written yet.
local function ledger_new(inv)
    local lg = tally_new()
    lg.inv, lg.base = inv, {}
    return lg
end

-- ledger_load reads, in one HMGET, the fields of the list not read yet.
local function ledger_load(lg, list)
    local missing = {}
    for _, f in ipairs(list) do
        if lg.base[f] == nil then
            missing[#missing + 1] = f
            lg.base[f] = false
        end
    end
    if #missing > 0 then
        local vals = redis.call('HMGET', lg.inv, unpack(missing))
        for i, f in ipairs(missing) do
            lg.base[f] = vals[i] or false
        end
    end
end

local function ledger_raw(lg, f)
    local v = lg.base[f]
    if v == nil then
        ledger_load(lg, { f })
        v = lg.base[f]
    end
    return v or nil
end

local function ledger_num(lg, f)
    return (tonumber(ledger_raw(lg, f)) or 0) + (lg.delta[f] or 0)
end

local ledger_add = tally_add

-- ledger_forget drops the values read: something outside the ledger changed the hash
-- (a lazy expiry). The changes are relative, so they stay valid.
local function ledger_forget(lg)
    lg.base = {}
end

local function ledger_flush(lg)
    for _, f in ipairs(lg.fields) do
        if lg.delta[f] ~= 0 then
            redis.call('HINCRBY', lg.inv, f, lg.delta[f])
        end
    end
    lg.delta, lg.fields = {}, {}
end

-- reserve_parse takes apart the request in args[from..to] (tk_reserve's ARGV, with the
-- fair-use part when fu_key is its tk:{s}:rt, the admission part when adm_key is its
-- tk:{s}:wa) and makes the checks that need no Redis read, in the contract's order.
-- s is the keys' shard. Returns the request, or nil and its answer.
local function reserve_parse(s, args, from, to, fu_key, adm_key)
    local fu, adm
    if fu_key then
        fu = fair_use_part(fu_key, args, from)
        if fu.bad then
            return nil, bad_call(BAD_FAIR_USE)
        end
        from = from + FAIR_USE_NARGS
    end
    if adm_key then
        adm = { key = adm_key, until_ms = parse_int(args[to - 1], 0), id = args[to] }
        to = to - 2
    end
    local e, rid = args[from], args[from + 1]
    if not in_shard(e, s) or not in_shard(rid, s) then
        return nil, bad_call('event or reservation id not in the keys\' shard')
    end
    if string.find(rid, ' ', 1, true) then
        return nil, bad_call('a reservation id has no space (HOLD LISTS)')
    end
    local hold = parse_int(args[from + 2], 1)
    local max = parse_int(args[from + 3], 1)
    local nlines = parse_int(args[from + 4], 0)
    local count = to - from + 1
    if not hold or not max or not nlines or count < 5 + 2 * nlines then
        return nil, bad_call('tk_reserve E R hold_ms max_per_type nlines {T amount}*nlines ticket_ids...')
    end
    if nlines == 0 then
        return nil, { 'ERR', 'empty' }
    end
    -- lines of the same type are merged, in first-seen order
    local rq = { s = s, fu = fu, adm = adm, e = e, rid = rid, hold = hold, max = max, args = args, count = count,
        tickets_at = from + 5 + 2 * nlines, lines = {}, order = {}, merged = {}, ntickets = 0 }
    for i = 1, nlines do
        local t = args[from + 3 + 2 * i]
        local n = parse_int(args[from + 4 + 2 * i], 1)
        if not n then
            return nil, { 'ERR', 'bad_amount', t }
        end
        rq.lines[i] = { t, n }
        rq.ntickets = rq.ntickets + n
        if rq.merged[t] then
            rq.merged[t] = rq.merged[t] + n
        else
            rq.merged[t] = n
            rq.order[#rq.order + 1] = t
        end
    end
    rq.nlines = nlines
    return rq
end

-- fair_use_check answers a refusal when the shard's outbox is over its limit or the
-- client is over one of its limits, and nil when the hold may go ahead (counting the
-- request against the client's rate in call.tat, written by reserve_all).
local function fair_use_check(call, fu)
    if fu.pause > 0 then
        call.outbox_len = call.outbox_len or redis.call('XLEN', call.keys[5])
        if call.outbox_len >= fu.pause then
            return { 'ERR', 'paused', 1 }
        end
    end
    if fu.client == '' then
        return nil
    end
    if fu.max > 0 and ledger_num(call.lg, 'cl:' .. fu.client) >= fu.max then
        return { 'ERR', 'too_many', 1 }
    end
    if fu.rate > 0 then
        local now = call.now
        if not call.rt_key then
            call.rt_key = fu.key
            redis.call('ZREMRANGEBYSCORE', fu.key, '-inf', now)
        end
        if call.tat[fu.client] == nil then
            call.tat[fu.client] = tonumber(redis.call('ZSCORE', fu.key, fu.client)) or false
        end
        local interval = 1000 / fu.rate
        local tolerance = interval * (2 * fu.rate - 1)
        local tat = math.max(call.tat[fu.client] or now, now)
        if tat - now > tolerance then
            return { 'ERR', 'too_many', math.max(1, math.ceil((tat - tolerance - now) / 1000)) }
        end
        if not call.tat_changed[fu.client] then
            call.tat_changed[fu.client] = true
            call.tat_order[#call.tat_order + 1] = fu.client
        end
        call.tat[fu.client] = tat + interval
    end
    return nil
end

-- type_fields returns the names of the fields of type t of event e, made once per call.
local function type_fields(call, e, t)
    local by_type = call.names[e]
    if not by_type then
        by_type = {}
        call.names[e] = by_type
    end
    local f = by_type[t]
    if not f then
        local p = e .. ':' .. t .. ':'
        f = { cap = p .. 'cap', avail = p .. 'avail', held = p .. 'held', price = p .. 'price' }
        by_type[t] = f
    end
    return f
end

-- event_meta returns the event's types (cjson) and date fields, read once per call.
local function event_meta(call, e)
    local m = call.meta[e]
    if not m then
        m = { types = e .. ':types', date = e .. ':date', away = 'dm:' .. e .. ':away' }
        ledger_load(call.lg, { m.types, m.date })
        call.meta[e] = m
    end
    return m
end

-- buckets_write adds a call's tally of held tickets per bucket (call.buckets) to the
-- buckets, indexing in dl only the ones it creates (most calls add to the bucket of
-- their 100 ms slot).
local function buckets_write(call)
    local keys, tl = call.keys, call.buckets
    for _, f in ipairs(tl.fields) do
        local n = tl.delta[f]
        if redis.call('HINCRBY', keys[1], f, n) == n then
            redis.call('ZADD', keys[3], bucket_score(bucket_parse(f)), f)
        end
    end
end

-- reserve_one checks one parsed request against the call's view and, when every
-- check passes, holds its tickets. Returns the request's answer.
local function reserve_one(call, rq)
    local lg, keys, e, rid, now = call.lg, call.keys, rq.e, rq.rid, call.now
    local refused = rq.fu and fair_use_check(call, rq.fu)
    if refused then
        return refused
    end
    local meta = event_meta(call, e)
    local types_json = ledger_raw(lg, meta.types)
    if not types_json then
        return { 'ERR', 'no_event' }
    end
    local date = tonumber(ledger_raw(lg, meta.date))
    if not date or date <= now then
        return { 'ERR', 'past' }
    end
    if call.exists[rid] then
        return { 'ERR', 'exists' }
    end
    if rq.adm then
        local used = waitroom.check_admission(keys, rq.s, rq.adm)
        ledger_forget(lg) -- the check may have expired the admission's previous hold
        if used then
            return used
        end
    end

    local order, merged = rq.order, rq.merged
    local fields, wanted = {}, {}
    for i, t in ipairs(order) do
        local f = type_fields(call, e, t)
        fields[i] = f
        if lg.base[f.cap] == nil then
            wanted[#wanted + 1] = f.cap
            wanted[#wanted + 1] = f.avail
            wanted[#wanted + 1] = f.price
        end
    end
    if #wanted > 0 then
        ledger_load(lg, wanted)
    end
    for i, t in ipairs(order) do
        if not lg.base[fields[i].cap] then
            return { 'ERR', 'unknown_type', t }
        end
    end
    for _, t in ipairs(order) do
        if merged[t] > rq.max then
            return { 'ERR', 'limit', t }
        end
    end
    local price = {}
    for i, t in ipairs(order) do
        local avail = ledger_num(lg, fields[i].avail)
        if avail < merged[t] then
            ledger_add(lg, meta.away, 1)
            return { 'ERR', 'insufficient', t, avail }
        end
        price[t] = tonumber(lg.base[fields[i].price]) or 0
    end
    local args, at = rq.args, rq.tickets_at
    if rq.count ~= 5 + 2 * rq.nlines + rq.ntickets then
        return bad_call('expected ' .. rq.ntickets .. ' ticket ids')
    end

    -- Every check passed: hold.
    local tickets = {}
    for i, t in ipairs(order) do
        local f, n = fields[i], merged[t]
        ledger_add(lg, f.avail, -n)
        ledger_add(lg, f.held, n)
        if not call.emptied[e] and ledger_num(lg, f.avail) == 0 then
            call.emptied[e] = types_json
            call.emptied_order[#call.emptied_order + 1] = e
        end
    end
    for _, line in ipairs(rq.lines) do
        local t = line[1]
        for _ = 1, line[2] do
            tickets[#tickets + 1] = { args[at], t, price[t] }
            at = at + 1
        end
    end
    local until_ms = now + rq.hold
    local rec = { e = e, st = 'PENDING', c = now, u = until_ms, t = tickets, q = 1 }
    if rq.adm then
        rec.a = rq.adm.until_ms -- see forget_persisted
    end
    for _, t in ipairs(order) do
        tally_add(call.buckets, bucket_field(until_ms, e, t), merged[t])
    end
    if rq.fu and rq.fu.client ~= '' then
        rec.k = rq.fu.client
        ledger_add(lg, 'cl:' .. rq.fu.client, 1)
    end
    call.exists[rid] = true
    local records = call.records
    local blob = rec_encode(rec) -- written by reserve_all in one HSET with the others
    records[#records + 1] = rid
    records[#records + 1] = blob
    local at = until_ms
    local list = call.lists[at]
    if not list then
        list = {}
        call.lists[at] = list
        call.list_order[#call.list_order + 1] = at
    end
    list[#list + 1] = rid
    outbox(keys, rid, rec, blob)
    if call.outbox_len then
        call.outbox_len = call.outbox_len + 1
    end
    if rq.adm then
        waitroom.bind_admission(rq.adm, rid)
    end
    return { 'OK', now, until_ms }
end

-- reserve_all answers every request of one shard (requests[i] is a parsed request or
-- {answer = reply} for one refused while parsing), in order, and writes what they
-- share once at the end.
local function reserve_all(keys, requests)
    local now = now_ms()
    expire_due(keys, now, EXPIRE_BATCH, false)
    local call = { keys = keys, now = now, lg = ledger_new(keys[1]), exists = {}, records = {},
        lists = {}, list_order = {}, buckets = tally_new(), names = {}, meta = {},
        tat = {}, tat_changed = {}, tat_order = {}, emptied = {}, emptied_order = {} }
    -- every request's id is looked up in one HMGET: an id already taken (a retried call)
    -- is refused; the holds made below add theirs to call.exists
    local rids = {}
    for _, rq in ipairs(requests) do
        rids[#rids + 1] = rq.rid
    end
    for i, found in ipairs(bulk('HMGET', keys[2], rids)) do -- no call for no ids
        if found then
            call.exists[rids[i]] = true
        end
    end
    local answers = {}
    for i, rq in ipairs(requests) do
        answers[i] = rq.answer or reserve_one(call, rq)
    end
    ledger_flush(call.lg)
    buckets_write(call)
    bulk('HSET', keys[2], call.records)
    for _, at in ipairs(call.list_order) do
        holds_add(keys, at, call.lists[at])
    end
    if #call.tat_order > 0 then
        local scores = {}
        for _, c in ipairs(call.tat_order) do
            scores[#scores + 1] = call.tat[c]
            scores[#scores + 1] = c
        end
        bulk('ZADD', call.rt_key, scores)
    end
    for _, e in ipairs(call.emptied_order) do
        demand_note_soldout(keys[1], e, call.emptied[e], now)
    end
    return answers
end

-- tk_reserve holds tickets of one or more types of an event, all of them or
-- none. The checks run in the order the HTTP contract gives its errors:
-- malformed amounts, then the event, then the types, the limit and the stock.
-- Optional keys after the shard's seven: tk:{s}:rt (fair use), then tk:{s}:wa (the
-- admission).
local function tk_reserve(keys, args)
    local fu_key = keys[8] and string.sub(keys[8], -3) == ':rt' and keys[8] or nil
    local adm_key = keys[fu_key and 9 or 8]
    local shard = (fu_key or adm_key) and { unpack(keys, 1, 7) } or keys
    local s = #keys == 7 + (fu_key and 1 or 0) + (adm_key and 1 or 0) and keys_shard(shard)
    if not s then
        return bad_call(BAD_KEYS)
    end
    if fu_key and fu_key ~= 'tk:{' .. s .. '}:rt' then
        return bad_call(BAD_FAIR_USE)
    end
    local rq, answer = reserve_parse(s, args, 1, #args, fu_key, adm_key)
    if not rq then
        return answer
    end
    return reserve_all(shard, { rq })[1]
end

-- tk_reserve_batch: see FUNCTIONS above. The batch's keys are checked once; each
-- request is parsed in place, out of the one ARGV.
local BAD_BATCH = 'tk_reserve_batch ARGV n {nargs fair admission args...}*n'
local function tk_reserve_batch(keys, args)
    local shard = { unpack(keys, 1, 7) }
    local s = #keys == 9 and keys_shard(shard)
    if not s or keys[8] ~= 'tk:{' .. s .. '}:rt' or keys[9] ~= 'tk:{' .. s .. '}:wa' then
        return bad_call('tk_reserve_batch keys: the shard\'s seven, tk:{s}:rt, tk:{s}:wa')
    end
    local n = parse_int(args[1], 1)
    local requests, at = {}, 2
    for i = 1, n or 0 do
        local nargs, fair, adm = parse_int(args[at], 0), args[at + 1], args[at + 2]
        if not nargs or (fair ~= '0' and fair ~= '1') or (adm ~= '0' and adm ~= '1') or at + 2 + nargs > #args then
            return bad_call(BAD_BATCH)
        end
        local rq, answer = reserve_parse(s, args, at + 3, at + 2 + nargs, fair == '1' and keys[8] or nil,
            adm == '1' and keys[9] or nil)
        requests[i] = rq or { answer = answer }
        at = at + 3 + nargs
    end
    if not n or at ~= #args + 1 then
        return bad_call(BAD_BATCH)
    end
    return reserve_all(shard, requests)
end

local function tk_get(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local rec = load_live(keys, args[1])
    if not rec then
        return { 'ERR', 'not_found' }
    end
    rec.r = args[1]
    return { 'OK', cjson.encode(rec) }
end

-- tk_view is tk_get in the shape the API renders: the public status and the
-- tickets flattened, so the server decodes a plain array instead of the blob.
local function tk_view(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local rec = load_live(keys, args[1])
    if not rec then
        return { 'ERR', 'not_found' }
    end
    local out = { 'OK', public_status(rec.st), rec.e, rec.c, rec.u }
    for _, t in ipairs(rec.t) do
        out[#out + 1] = t[1]
        out[#out + 1] = t[2]
        out[#out + 1] = t[3]
    end
    return out
end

local function tk_cancel(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local rid = args[1]
    local rec = load_live(keys, rid)
    if not rec then
        return { 'ERR', 'not_found' }
    end
    if rec.st ~= 'PENDING' then
        return { 'ERR', 'state', rec.st }
    end
    release(keys, rid, rec, 'cancelled')
    return { 'OK' }
end


-- finish_payment owns the PAYING -> COMPLETED / PENDING transition. On success the
-- tickets move from held to sold and the revenue grows; on failure the transaction
-- records the error and the hold is PENDING again until its own deadline (already
-- passed: it expires at once, so no path completes or keeps an expired hold).
local function finish_payment(keys, rid, rec, ok, err, now)
    local inv, x = keys[1], rec.x
    redis.call('ZREM', keys[4], rid)
    if ok then
        for _, line in ipairs(rec_lines(rec)) do
            local p = rec.e .. ':' .. line[1] .. ':'
            redis.call('HINCRBY', inv, p .. 'held', -line[2])
            redis.call('HINCRBY', inv, p .. 'sold', line[2])
        end
        redis.call('HINCRBY', inv, rec.e .. ':revenue', x.amt)
        client_release(keys, rec)
        x.st, rec.st = 'COMPLETED', 'COMPLETED'
    else
        x.st, x.err, rec.st = 'ERROR', err, 'PENDING'
        demand_count(inv, rec.e, 'failed')
    end
    redis.call('HSET', keys[6], x.id, cjson.encode({ r = rid, st = x.st, err = x.err }))
    if not ok and now >= rec.u then
        release(keys, rid, rec, 'expired') -- writes the record and the outbox entry
        return rec.st
    end
    if not ok then
        holds_add(keys, rec.u, { rid })
        bucket_put(keys, rec)
    end
    rec_store(keys, rid, rec)
    return rec.st
end

-- timeout_payments fails the payments whose gateway did not answer in time.
local function timeout_payments(keys, now, limit)
    local due = redis.call('ZRANGEBYSCORE', keys[4], '-inf', now, 'LIMIT', 0, limit)
    for _, rid in ipairs(due) do
        local blob = redis.call('HGET', keys[2], rid)
        local rec = blob and rec_decode(blob)
        if rec and rec.st == 'PAYING' then
            finish_payment(keys, rid, rec, false, 'Payment gateway timed out', now)
        else
            redis.call('ZREM', keys[4], rid)
        end
    end
    return #due
end

-- forget_persisted drops finished records whose grace after persistence ran out;
-- reads of them are answered from PostgreSQL from then on.
local function forget_persisted(keys, now, limit)
    local due = redis.call('ZRANGEBYSCORE', keys[7], '-inf', now, 'LIMIT', 0, limit)
    for _, member in ipairs(due) do
        local kind, id = string.sub(member, 1, 1), string.sub(member, 3)
        local kept_until = nil
        if kind == 'r' then
            local blob = redis.call('HGET', keys[2], id)
            local rec = blob and rec_decode(blob)
            local admission_until = rec and rec.st == 'CANCELLED' and tonumber(rec.a)
            if admission_until and admission_until > now then
                -- held through a waiting-room admission that still runs: the admission may
                -- hold again, which check_admission knows from this CANCELLED record (a
                -- missing one might have been paid); kept until the admission is over
                kept_until = admission_until
            elseif rec and (rec.st == 'COMPLETED' or rec.st == 'CANCELLED') then
                redis.call('HDEL', keys[2], id)
            end
        else
            local blob = redis.call('HGET', keys[6], id)
            local x = blob and cjson.decode(blob)
            if x and x.st ~= 'PENDING' then
                redis.call('HDEL', keys[6], id)
            end
        end
        if kept_until then
            redis.call('ZADD', keys[7], kept_until, member)
        else
            redis.call('ZREM', keys[7], member)
        end
    end
    return #due
end

local function tk_pay_start(keys, args)
    local s = keys_shard(keys)
    if not s then
        return bad_call(BAD_KEYS)
    end
    local rid, tid = args[1], args[2]
    local timeout = parse_int(args[3], 1)
    if not in_shard(rid, s) or not in_shard(tid, s) or not timeout then
        return bad_call('tk_pay_start R T gateway_timeout_ms, ids in the keys\' shard')
    end
    if redis.call('HEXISTS', keys[6], tid) == 1 then
        -- T started this payment already and the caller never heard (its reply was lost):
        -- the same answer again, nothing changes (the record is read without lazy expiry,
        -- which a PAYING one does not need, so that a refused call writes nothing)
        local blob = redis.call('HGET', keys[2], rid)
        local rec = blob and rec_decode(blob)
        if rec and rec.st == 'PAYING' and rec.x.id == tid then
            return { 'OK', tid, rec.x.amt }
        end
        return bad_call('transaction id already used')
    end
    local rec = load_live(keys, rid)
    if not rec then
        return { 'ERR', 'not_found' }
    end
    if rec.st == 'PAYING' then
        return { 'EXISTS', rec.x.id }
    end
    if rec.st ~= 'PENDING' then
        return { 'ERR', 'state', rec.st }
    end
    local now, amount = now_ms(), 0
    for _, t in ipairs(rec.t) do
        amount = amount + t[3]
    end
    bucket_take(keys, rec) -- held by the payment now, not by a deadline (all there: load_live)
    rec.st = 'PAYING'
    rec.x = { id = tid, st = 'PENDING', amt = amount, d = now }
    rec_store(keys, rid, rec)
    redis.call('ZREM', keys[3], rid) -- indexed alone (earlier versions); a list skips it
    redis.call('ZADD', keys[4], now + timeout, rid)
    redis.call('HSET', keys[6], tid, cjson.encode({ r = rid, st = 'PENDING' }))
    return { 'OK', tid, amount }
end

local function tk_pay_finish(keys, args)
    local s = keys_shard(keys)
    if not s then
        return bad_call(BAD_KEYS)
    end
    local rid, tid, outcome, err = args[1], args[2], args[3], args[4]
    if not in_shard(rid, s) or (outcome ~= 'ok' and outcome ~= 'fail') then
        return bad_call('tk_pay_finish R T ok|fail error_message')
    end
    local blob = redis.call('HGET', keys[2], rid)
    local rec = blob and rec_decode(blob)
    if not rec or rec.st ~= 'PAYING' or rec.x.id ~= tid then
        return { 'ERR', 'stale', rec and rec.st or 'NOT_FOUND' }
    end
    return { 'OK', finish_payment(keys, rid, rec, outcome == 'ok', err ~= '' and err or 'Payment failed', now_ms()) }
end

local function tk_txn(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local blob = type(args[1]) == 'string' and redis.call('HGET', keys[6], args[1])
    if not blob then
        return { 'ERR', 'not_found' }
    end
    local x = cjson.decode(blob)
    return { 'OK', x.st, x.err or '' }
end

local function tk_persisted(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local grace = parse_int(args[1], 0)
    local nids = parse_int(args[2], 0)
    if not grace or not nids or #args < 2 + nids then
        return bad_call('tk_persisted grace_ms nids ids... members...')
    end
    if nids > 0 then
        local ids = { unpack(args, 3, 2 + nids) }
        redis.call('XACK', keys[5], OUTBOX_GROUP, unpack(ids))
        redis.call('XDEL', keys[5], unpack(ids))
    end
    local forget_at = now_ms() + grace
    for i = 3 + nids, #args do
        redis.call('ZADD', keys[7], forget_at, args[i])
    end
    return nids
end

-- tk_dead_letter sets one outbox entry aside for an operator: the copy, the
-- acknowledgement and the removal happen together or not at all, so a writer that
-- dies half-way can neither lose the entry nor leave it in both streams. Every
-- argument is checked before the first write, so a refused call changes nothing.
local function tk_dead_letter(keys, args)
    local s = #keys == 2 and string.match(keys[1], '^tk:{([0-9a-f][0-9a-f][0-9a-f][0-9a-f])}:ob$')
    local id, reason = args[1], args[2]
    if not s or keys[2] ~= 'tk:{' .. s .. '}:dead' then
        return bad_call('tk_dead_letter keys must be tk:{s}:ob, tk:{s}:dead')
    end
    if #args ~= 2 or type(id) ~= 'string' or not string.match(id, '^%d+%-%d+$') then
        return bad_call('tk_dead_letter stream_id reason')
    end
    local entry = redis.call('XRANGE', keys[1], id, id)[1]
    redis.call('XACK', keys[1], OUTBOX_GROUP, id)
    if not entry then
        return 0
    end
    local m, rid = '', nil
    for i = 1, #entry[2] - 1, 2 do
        if entry[2][i] == 'm' then
            m = entry[2][i + 1]
        elseif entry[2][i] == 'r' then
            rid = entry[2][i + 1]
        end
    end
    local letter = { keys[2], '*', 'id', id, 'm', m, 'err', reason }
    if rid then
        letter[#letter + 1] = 'r'
        letter[#letter + 1] = rid
    end
    redis.call('XADD', unpack(letter))
    redis.call('XDEL', keys[1], id)
    return 1
end

-- Idempotency keys. Each transition of a key has one function here: claim (the
-- first request with the key runs; a retry with the same body replays its
-- answer, one with another body is refused), store (the claim's owner records
-- its answer) and release (the owner gives the key back unanswered). The token
-- makes store and release the claim owner's alone: a request whose claim lapsed
-- cannot overwrite or free the key a later request claimed.
local function idem_key(keys)
    return #keys == 1 and string.match(keys[1], '^tk:idem:%x+$') ~= nil
end

local function idem_owned(key, token)
    return redis.call('TYPE', key).ok == 'hash' and redis.call('HGET', key, 'o') == token
end

local function tk_idem_claim(keys, args)
    local claim, fp, token = parse_int(args[1], 1), args[2], args[3]
    if not idem_key(keys) or not claim or not fp or fp == '' or not token or token == '' then
        return bad_call('tk_idem_claim tk:idem:<hash> claim_ms fingerprint token')
    end
    if redis.call('TYPE', keys[1]).ok == 'string' then
        -- an earlier version's plain string ('*' or an answer) has no fingerprint:
        -- it cannot tell this body from another, so it is not replayed
        redis.call('DEL', keys[1])
    end
    local cur = redis.call('HMGET', keys[1], 'f', 'a')
    if not cur[1] then
        redis.call('HSET', keys[1], 'f', fp, 'o', token)
        redis.call('PEXPIRE', keys[1], claim)
        return { 'CLAIMED' }
    end
    if cur[1] ~= fp then
        return { 'MISMATCH' }
    end
    if not cur[2] then
        return { 'BUSY' }
    end
    return { 'DONE', cur[2] }
end

local function tk_idem_store(keys, args)
    local token, ttl, answer = args[1], parse_int(args[2], 1), args[3]
    if not idem_key(keys) or not token or not ttl or not answer then
        return bad_call('tk_idem_store tk:idem:<hash> token ttl_ms answer')
    end
    if not idem_owned(keys[1], token) then
        return { 'ERR', 'not_claimed' }
    end
    redis.call('HSET', keys[1], 'a', answer)
    redis.call('HDEL', keys[1], 'o')
    redis.call('PEXPIRE', keys[1], ttl)
    return { 'OK' }
end

local function tk_idem_release(keys, args)
    local token = args[1]
    if not idem_key(keys) or not token then
        return bad_call('tk_idem_release tk:idem:<hash> token')
    end
    if not idem_owned(keys[1], token) then
        return { 'ERR', 'not_claimed' }
    end
    redis.call('DEL', keys[1])
    return { 'OK' }
end

-- head_score returns the score of the sorted set's earliest member, or nil when
-- it is empty: one ZRANGE, so a shard with nothing due pays no ZRANGEBYSCORE.
local function head_score(key)
    local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return head[2] and tonumber(head[2])
end

-- dl_head is head_score for dl: when a hold is next due, the earlier of the first hold
-- list's deadline and the first hold indexed alone. The buckets need no look: a bucket
-- exists only while a hold in it is unreleased, and that hold is due no later.
local function dl_head(key)
    local list = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', -BUCKET_BASE), 'WITHSCORES',
        'LIMIT', 0, 1)
    local alone = redis.call('ZRANGEBYSCORE', key, 0, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    local at = list[2] and tonumber(list[2]) + HOLDS_BASE
    local one = alone[2] and tonumber(alone[2])
    if one and (not at or one < at) then
        at = one
    end
    return at
end

local function tk_expire(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local limit = parse_int(args[1], 1)
    local want_next = args[2] == 'next'
    if not limit or (args[2] ~= nil and not want_next) then
        return bad_call('tk_expire limit [next]')
    end
    -- a shard with no hold, payment or record to forget has none of the three keys
    -- (Redis deletes an empty sorted set): one EXISTS answers for it
    if redis.call('EXISTS', keys[3], keys[4], keys[7]) == 0 then
        return want_next and { 0, -1 } or 0
    end
    local now = now_ms()
    local n = 0
    local next_ms = -1
    -- dl, pay, gc: each is worked on only when its first entry is due, and read
    -- again for the reply only when it was worked on
    local sweeps = {
        { keys[4], function() timeout_payments(keys, now, limit) end, head_score },
        { keys[7], function() forget_persisted(keys, now, limit) end, head_score },
        { keys[3], function() n = expire_due(keys, now, limit, true) end, dl_head },
    }
    for _, sw in ipairs(sweeps) do
        local head = sw[3]
        local at = head(sw[1])
        if at and at <= now then
            sw[2]()
            at = want_next and head(sw[1])
        end
        if at and (next_ms < 0 or at < next_ms) then
            next_ms = at
        end
    end
    if not want_next then
        return n
    end
    return { n, math.floor(next_ms) }
end

local function tk_turned_away(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local e, n = args[1], parse_int(args[2], 1)
    if not n then
        return bad_call('tk_turned_away E n')
    end
    if not event_types(keys[1], e) then
        return 0
    end
    redis.call('HINCRBY', keys[1], 'dm:' .. e .. ':away', n)
    return n
end

-- tk_sample adds one point to the event's sales history (DEMAND FIGURES).
local function tk_sample(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local e = args[1]
    local step, max = parse_int(args[2], 1), parse_int(args[3], 1)
    if not step or not max then
        return bad_call('tk_sample E step_ms max_samples')
    end
    local inv = keys[1]
    local types = event_types(inv, e)
    if not types then
        return {}
    end
    local now = now_ms()
    local p = 'dm:' .. e .. ':'
    local hist = redis.call('HGET', inv, p .. 'hist')
    hist = hist and cjson.decode(hist) or {}
    local last = hist[#hist]
    if last and math.floor(last[1] / step) >= math.floor(now / step) then
        return 0
    end
    local fields = { p .. 'away', p .. 'failed' }
    for _, t in ipairs(types) do
        fields[#fields + 1] = e .. ':' .. t .. ':sold'
        fields[#fields + 1] = e .. ':' .. t .. ':held'
        fields[#fields + 1] = e .. ':' .. t .. ':avail'
    end
    local v = redis.call('HMGET', inv, unpack(fields))
    local sold, held, avail = 0, 0, 0
    for i = 3, #v, 3 do
        sold, held, avail = sold + (tonumber(v[i]) or 0), held + (tonumber(v[i + 1]) or 0), avail + (tonumber(v[i + 2]) or 0)
    end
    hist[#hist + 1] = { now, sold, held, avail, tonumber(v[1]) or 0, tonumber(v[2]) or 0 }
    while #hist > max do
        table.remove(hist, 1)
    end
    redis.call('HSET', inv, p .. 'hist', cjson.encode(hist))
    return 1
end

local function tk_stats(keys, args)
    if not keys_shard(keys) then
        return bad_call(BAD_KEYS)
    end
    local e = args[1]
    local types = event_types(keys[1], e)
    if not types then
        return {}
    end
    local fields = { e .. ':cancelled', e .. ':expired', e .. ':revenue' }
    for _, t in ipairs(types) do
        local p = e .. ':' .. t .. ':'
        fields[#fields + 1] = p .. 'cap'
        fields[#fields + 1] = p .. 'avail'
        fields[#fields + 1] = p .. 'held'
        fields[#fields + 1] = p .. 'sold'
    end
    local vals = redis.call('HMGET', keys[1], unpack(fields))
    local cap, avail, held, sold = 0, 0, 0, 0
    local per = {}
    for i, t in ipairs(types) do
        local b = 3 + 4 * (i - 1)
        local c, a, h, so = tonumber(vals[b + 1]) or 0, tonumber(vals[b + 2]) or 0, tonumber(vals[b + 3]) or 0,
            tonumber(vals[b + 4]) or 0
        cap, avail, held, sold = cap + c, avail + a, held + h, sold + so
        for _, v in ipairs({ t, c, a, h, so }) do
            per[#per + 1] = v
        end
    end
    local lag = 0
    local oldest = redis.call('XRANGE', keys[5], '-', '+', 'COUNT', 1)[1]
    if oldest then
        local t = redis.call('TIME')
        lag = math.max(0, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(string.match(oldest[1], '^(%d+)')))
    end
    local out = { cap, avail, held, sold, tonumber(vals[1]) or 0, tonumber(vals[2]) or 0, tonumber(vals[3]) or 0, #types, lag }
    for _, v in ipairs(per) do
        out[#out + 1] = v
    end
    if args[2] == 'demand' then
        for _, v in ipairs(demand_figures(keys[1], e)) do
            out[#out + 1] = v
        end
    end
    return out
end

--[[ WAITING ROOM
A room hands out places in the queue and admits them at a rate. The admission line
L(t), the number of places admitted by instant t, is a list of segments
{from_ms, base, per_minute}: from from_ms on, L(t) = base + floor((t - from_ms) *
per_minute / 60000). Every process computes L(t) itself from the segments it
refreshes every 200 ms; a segment is only ever added WR_SCHEDULE_MS ahead of the
instant it applies, so all processes agree on L at every instant, and L never
decreases. When the line runs ahead of the queue (nobody left to admit), it is
frozen (a segment with per_minute 0) so that idle minutes do not bank a burst of
admissions; it resumes once someone waits again.
A segment may be forgotten only once its successor began longer ago than an admission
lives (cfg.a) plus a minute: the places it admitted have all expired by then, and a
process told of a place before the oldest segment kept counts it as expired
(tk_wr_admitted_at). So the automatic freezes must not crowd segments out before that:
  - a running segment is frozen only once it has run WR_MIN_RUN_MS, so a lightly used
    room adds at most a freeze and a resume every WR_MIN_RUN_MS + WR_SCHEDULE_MS; the
    price is that an idle line banks up to per_minute x (WR_MIN_RUN_MS +
    WR_SCHEDULE_MS) / 60000 admissions (a burst of about 11 s at the room's rate);
  - a freeze is added only while there is room for it and for the resume that follows
    it (WR_MAX_SEGMENTS, as TK_WR_MAX_SEGMENTS in engine/waitroom.h); with no room the
    line runs on until old segments are forgotten, admitting earlier rather than
    forgetting admissions that still live.
Only an admin change (tk_wr_set) may push the oldest segment out at the cap, whatever
its age; the places it alone described then count as expired, never admitted again.
]]
local WR_SCHEDULE_MS = 1000
local WR_MIN_RUN_MS = 10000
local WR_MAX_SEGMENTS = 64
local WR_ROOM_KEY = '^tk:{([0-9a-f][0-9a-f][0-9a-f][0-9a-f])}:wr$'

local function wr_line(seg, t)
    local cur
    for _, sg in ipairs(seg) do
        if sg[1] > t then
            break
        end
        cur = sg
    end
    if not cur then
        return 0
    end
    return cur[2] + math.floor((t - cur[1]) * cur[3] / 60000)
end

local function wr_append(seg, at, rate)
    local base = wr_line(seg, at)
    seg[#seg + 1] = { at, base, rate }
    while #seg > WR_MAX_SEGMENTS do
        table.remove(seg, 1)
    end
    return base
end

local function wr_load(keys, e)
    if #keys ~= 1 or type(e) ~= 'string' then
        return nil
    end
    local s = string.match(keys[1], WR_ROOM_KEY)
    if not s or not in_shard(e, s) then
        return nil
    end
    local blob = redis.call('HGET', keys[1], e .. ':cfg')
    return blob and cjson.decode(blob) or false
end

local function wr_state(keys, e, cfg)
    local vals = redis.call('HMGET', keys[1], e .. ':seq', e .. ':pre', e .. ':seed')
    local out = { cfg.en, cfg.o, cfg.r, cfg.a, tonumber(vals[1]) or 0, tonumber(vals[2]) or -1, vals[3] or '', #cfg.seg }
    for _, sg in ipairs(cfg.seg) do
        out[#out + 1] = sg[1]
        out[#out + 1] = sg[2]
        out[#out + 1] = sg[3]
    end
    return out
end

-- wr_open_if_due freezes the pre-opening crowd and its shuffle seed, once.
local function wr_open_if_due(keys, e, cfg, now, seed)
    if cfg.en ~= 1 or now < cfg.seg[1][1] or redis.call('HEXISTS', keys[1], e .. ':pre') == 1 then
        return
    end
    redis.call('HSET', keys[1], e .. ':pre', redis.call('HGET', keys[1], e .. ':seq') or 0, e .. ':seed', seed)
end

-- wr_schedule keeps the line from banking admissions nobody can use, and forgets
-- segments superseded longer ago than any admission they granted can live (see the
-- section's comment for when it freezes). Returns whether cfg changed.
local function wr_schedule(keys, e, cfg, now)
    local seg = cfg.seg
    local last = seg[#seg]
    if cfg.en ~= 1 or last[1] > now then
        return false
    end
    local changed = false
    while #seg >= 2 and seg[2][1] <= now - (cfg.a * 1000 + 60000) do
        table.remove(seg, 1)
        changed = true
    end
    local joined = tonumber(redis.call('HGET', keys[1], e .. ':seq')) or 0
    local at = now + WR_SCHEDULE_MS
    if last[3] > 0 and wr_line(seg, at) > joined then
        -- frozen only after a run of its own, and with room for the freeze and its resume:
        -- the cap then never forces out a segment whose admissions still live
        if now - last[1] >= WR_MIN_RUN_MS and #seg + 2 <= WR_MAX_SEGMENTS then
            wr_append(seg, at, 0)
            changed = true
        end
    elseif last[3] == 0 and last[2] < joined then
        wr_append(seg, at, cfg.r)
        changed = true
    end
    return changed
end

local function wr_save(keys, e, cfg)
    redis.call('HSET', keys[1], e .. ':cfg', cjson.encode(cfg))
end

local function tk_wr_set(keys, args)
    local e = args[1]
    local cfg = wr_load(keys, e)
    local en, opens, rate, adm = parse_int(args[2], 0), parse_int(args[3], 0), parse_int(args[4], 1), parse_int(args[5], 1)
    if cfg == nil or not en or en > 1 or not opens or not rate or not adm then
        return bad_call('tk_wr_set E enabled opens_ms per_minute admission_s')
    end
    local now = now_ms()
    -- a room turned off stops its line where it is: turned on again, it admits from there
    -- at its rate, not everyone the line would have reached meanwhile at once
    local line_rate = en == 1 and rate or 0
    if not cfg or cfg.seg[1][1] > now + WR_SCHEDULE_MS then
        -- not open yet, and not about to: the line simply starts at the new opening
        -- (or now, for an opening in the past: no admissions are banked before it)
        cfg = { seg = { { math.max(opens, now), 0, line_rate } } }
    else
        -- open: the change applies after every pending one and WR_SCHEDULE_MS from now
        local seg = cfg.seg
        local at = math.max(now + WR_SCHEDULE_MS, seg[#seg][1] + 1)
        if opens > at then
            wr_append(seg, at, 0) -- paused until the new opening
            wr_append(seg, opens, line_rate)
        else
            wr_append(seg, at, line_rate)
        end
    end
    cfg.en, cfg.o, cfg.r, cfg.a = en, opens, rate, adm
    wr_save(keys, e, cfg)
    return wr_state(keys, e, cfg)
end

local function tk_wr_sync(keys, args)
    local e, seed = args[1], args[2]
    local cfg = wr_load(keys, e)
    if cfg == nil or type(seed) ~= 'string' then
        return bad_call('tk_wr_sync E seed_hex')
    end
    if not cfg then
        return {}
    end
    local now = now_ms()
    wr_open_if_due(keys, e, cfg, now, seed)
    if wr_schedule(keys, e, cfg, now) then
        wr_save(keys, e, cfg)
    end
    return wr_state(keys, e, cfg)
end

local function tk_wr_join(keys, args)
    local e, seed = args[1], args[2]
    local cfg = wr_load(keys, e)
    if cfg == nil or type(seed) ~= 'string' then
        return bad_call('tk_wr_join E seed_hex')
    end
    if not cfg or cfg.en ~= 1 then
        return { 'OFF', cfg and cfg.a or 600 }
    end
    local now = now_ms()
    wr_open_if_due(keys, e, cfg, now, seed)
    local ticket = redis.call('HINCRBY', keys[1], e .. ':seq', 1)
    if wr_schedule(keys, e, cfg, now) then
        wr_save(keys, e, cfg)
    end
    local out = { 'JOIN', ticket }
    for _, v in ipairs(wr_state(keys, e, cfg)) do
        out[#out + 1] = v
    end
    return out
end

-- check_admission refuses a hold while the admission's previous hold is live or
-- paid. A previous hold that already left Redis (finished and persisted a grace
-- period ago) counts as used: it may have been paid.
function waitroom.check_admission(keys, s, adm)
    if adm.key ~= 'tk:{' .. s .. '}:wa' or type(adm.id) ~= 'string' or not in_shard(adm.id, s) or not adm.until_ms then
        return bad_call('tk_reserve admission: key tk:{s}:wa, ARGV ... until_ms E:ticket')
    end
    local prev = redis.call('HGET', adm.key, adm.id)
    if not prev then
        return nil
    end
    local rec = load_live(keys, prev)
    if not rec or rec.st ~= 'CANCELLED' then
        return { 'ERR', 'admission_used' }
    end
    return nil
end

function waitroom.bind_admission(adm, rid)
    redis.call('HSET', adm.key, adm.id, rid)
    if redis.call('PEXPIRETIME', adm.key) < adm.until_ms then
        redis.call('PEXPIREAT', adm.key, adm.until_ms)
    end
end

redis.register_function { function_name = 'tk_event_init', callback = tk_event_init, flags = {} }
redis.register_function { function_name = 'tk_avail', callback = tk_avail, flags = { 'no-writes' } }
redis.register_function { function_name = 'tk_reserve', callback = tk_reserve, flags = {} }
redis.register_function { function_name = 'tk_reserve_batch', callback = tk_reserve_batch, flags = {} }
redis.register_function { function_name = 'tk_get', callback = tk_get, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_cancel', callback = tk_cancel, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_expire', callback = tk_expire, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_stats', callback = tk_stats, flags = { 'no-writes' } }
redis.register_function { function_name = 'tk_sample', callback = tk_sample, flags = {} }
redis.register_function { function_name = 'tk_turned_away', callback = tk_turned_away, flags = {} }
redis.register_function { function_name = 'tk_pay_start', callback = tk_pay_start, flags = {} }
redis.register_function { function_name = 'tk_pay_finish', callback = tk_pay_finish, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_txn', callback = tk_txn, flags = { 'no-writes' } }
redis.register_function { function_name = 'tk_persisted', callback = tk_persisted, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_idem_claim', callback = tk_idem_claim, flags = {} }
redis.register_function { function_name = 'tk_idem_store', callback = tk_idem_store, flags = {} }
redis.register_function { function_name = 'tk_idem_release', callback = tk_idem_release, flags = {} }
redis.register_function { function_name = 'tk_view', callback = tk_view, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_dead_letter', callback = tk_dead_letter, flags = { 'allow-oom' } }
redis.register_function { function_name = 'tk_wr_set', callback = tk_wr_set, flags = {} }
redis.register_function { function_name = 'tk_wr_join', callback = tk_wr_join, flags = {} }
redis.register_function { function_name = 'tk_wr_sync', callback = tk_wr_sync, flags = {} }
