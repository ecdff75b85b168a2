-- GET the URL given to wrk (the filtered, sorted list of 50 offers).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
