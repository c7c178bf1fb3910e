-- Tamper with the string metatable to reach the real string library.
return {
  id = "sec_string_metatable", name = "string metatable", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local mt = getmetatable("")
    mt.__index = { rep = function() return "pwned" end }
    return "escaped " .. ("x"):rep(3)
  end,
}
