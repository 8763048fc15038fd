-- GET /api/membership/members/{id}: one member read whole (its PESEL decrypted, the read
-- audited as member.pesel_read), cycling over the ids in BRAMA_IDS_FILE.
dofile("bench/lua/report.lua")
wrk.headers["x-access-token"] = os.getenv("BRAMA_TOKEN")
local ids = {}
for line in io.lines(os.getenv("BRAMA_IDS_FILE")) do ids[#ids + 1] = line end
local n = 0

function request()
  n = n + 1
  return wrk.format("GET", "/api/membership/members/" .. ids[(n % #ids) + 1])
end
