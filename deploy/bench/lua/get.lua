-- GET /api/v1/objects/offer/records/{id}, id drawn at random from BENCH_IDS (one a line).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")

local ids = {}

function bench_init(args)
   for line in io.lines(os.getenv("BENCH_IDS")) do
      if line ~= "" then ids[#ids + 1] = line end
   end
   if #ids == 0 then error("no ids in " .. tostring(os.getenv("BENCH_IDS"))) end
end

function request()
   return wrk.format("GET", "/api/v1/objects/offer/records/" .. ids[math.random(#ids)])
end
