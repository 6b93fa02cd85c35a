-- wrk script: pipelines N GET / requests per write (TechEmpower's pipeline.lua;
-- N is the first argument after --, default 16).
--   wrk -t1 -c256 -d5s -s pipeline.lua http://127.0.0.1:PORT/ -- 16
init = function(args)
   local depth = tonumber(args[1]) or 16
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format()
   end
   req = table.concat(r)
end

request = function()
   return req
end
