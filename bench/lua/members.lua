-- GET /api/membership/members: a search of 20 by a surname fragment (BRAMA_SEARCH=1) or the
-- first page sorted by surname.
dofile("bench/lua/report.lua")
local token = os.getenv("BRAMA_TOKEN")
local search = os.getenv("BRAMA_SEARCH") == "1"
-- The surnames bench/seed_members.py gives members, each followed by a number below 97.
local terms = { "kowalski", "nowak", "wisniewski", "wojcik", "kaminski", "lewandowski", "zielinski", "szymanski",
  "wozniak", "dabrowski", "kozlowski", "jankowski", "mazur", "kwiatkowski", "krawczyk", "piotrowski", "grabowski",
  "nowakowski", "pawlowski", "michalski" }
local n = 0
wrk.headers["x-access-token"] = token

function request()
  n = n + 1
  local path = "/api/membership/members?page=1&limit=20"
  if search then path = path .. "&q=" .. terms[(n % #terms) + 1] .. tostring(n % 97) end
  return wrk.format("GET", path)
end
