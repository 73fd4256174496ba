-- wrk script: POSTs the bench payload (as function.sql) to the shim, keep-alive.
-- wrk -s shim.lua URL -- <n leads stored> <base, a multiple of 10^9> <api key>
-- Half the requests name an existing lead (1..n), half a new one (base + 10^7..10^9-1).
local n, base, key
local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end

function init(args)
    n = tonumber(args[1])
    base = tonumber(args[2])
    key = args[3]
    math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["X-Dialer-Api-Key"] = key
end

local fmt = string.format
local body = '{"user": "agent%d", "lead_id": "%.0f", "list_id": "1001", "campaign": "UKSALES", '
    .. '"phone_code": "44", "phone_number": "07%.0f", "title": "Mr", "first_name": "John", '
    .. '"last_name": "Smith", "email": "john.smith%.0f@example.co.uk", '
    .. '"address1": "221B Baker Street", "city": "London", "postal_code": "NW1 6XE", '
    .. '"country_code": "GB", "SQLdate": "2024-01-15 10:30:00", "uniqueid": "1705314600.12345", '
    .. '"comments": "Interested in the premium plan; call back after 5pm, prefers e-mail. '
    .. 'Spoke with the spouse too, both agreed to a follow-up next week."}'

function request()
    local id
    if math.random(0, 1) == 0 then
        id = math.random(1, n)
    else
        id = base + math.random(10000000, 999999999)
    end
    local p = 100000000000 + id
    return wrk.format(nil, "/api/leads/from-dialer/", nil,
                      fmt(body, math.random(1, 50), id, p, id))
end
