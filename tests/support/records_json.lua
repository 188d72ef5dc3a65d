-- records_json.lua: the reservation records of a shard's hash tk:{s}:res as JSON, for the
-- shell audits (tests/fault/audit.sh, bench/lib.sh) that read them with jq. The library
-- stores records as msgpack (cjson before 2026-12), which jq cannot read.
--   EVAL <this> 1 tk:{s}:res [R ...]  -> R1, json1, R2, json2, ... (every record without R)
-- The shape of HGETALL's (or of HGET's, one R), so callers pipe it as they would those.
local out = {}
local function add(rid, blob)
    if blob then
        local rec = string.byte(blob, 1) == 123 and cjson.decode(blob) or cmsgpack.unpack(blob)
        out[#out + 1] = rid
        out[#out + 1] = cjson.encode(rec)
    end
end
if #ARGV == 0 then
    local all = redis.call('HGETALL', KEYS[1])
    for i = 1, #all, 2 do
        add(all[i], all[i + 1])
    end
else
    for _, rid in ipairs(ARGV) do
        add(rid, redis.call('HGET', KEYS[1], rid))
    end
end
return out
