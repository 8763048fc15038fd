-- POST /api/membership/members: a new member each time (its PESEL encrypted and given a blind
-- index), with PESELs bench/seed_members.py has not used (n from 1 000 000 up; wrk runs this
-- script in one thread, so n never repeats).
dofile("bench/lua/report.lua")
wrk.headers["x-access-token"] = os.getenv("BRAMA_TOKEN")
wrk.headers["content-type"] = "application/json"
local weights = { 1, 3, 7, 9, 1, 3, 7, 9, 1, 3 }
local n = 1000000

-- seed_members.py's pesel(n), in wrk's Lua 5.1 (no integer division operator).
local function pesel(k)
  local floor = math.floor
  local day = floor(k / 10000)
  local year, month, dom = 1940 + floor(day / 336) % 60, 1 + floor(day / 28) % 12, 1 + day % 28
  if year >= 2000 then month = month + 20 end
  local first10 = string.format("%02d%02d%02d%04d", year % 100, month, dom, k % 10000)
  local sum = 0
  for i = 1, 10 do sum = sum + weights[i] * tonumber(first10:sub(i, i)) end
  return first10 .. tostring((10 - sum % 10) % 10)
end

function request()
  n = n + 1
  local body = string.format('{"imie":"Anna","nazwisko":"Nowak%d","wyksztalcenie":"Średnie","pesel":"%s",'
    .. '"wojewodztwo":"Mazowieckie","miejscowosc":"Warszawa","ulica":"Długa","nrdomulokalu":"5",'
    .. '"kodpocztowy":"00-950","email":"b%d@example.org","tel":"600 100 200"}', n % 97, pesel(n), n)
  return wrk.format("POST", "/api/membership/members", nil, body)
end
