-- wrk script: GET the given path with "Authorization: Bearer <key>",
-- taking the keys of the KEYS environment variable (comma separated) in
-- turn, so that every request is one of several patients'.
local keys = {}
for key in string.gmatch(os.getenv("KEYS") or "-", "[^,]+") do
  keys[#keys + 1] = key
end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. keys[i]})
end
