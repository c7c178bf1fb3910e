return {
  id = "sec_string_dump", name = "string.dump", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local code = string.dump(function() return 1 end)
    return "escaped " .. #code
  end,
}
