-- Writing into a library table must fail (they are shared by every call).
return {
  id = "sec_lib_poison", name = "poison string", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    string.format = function() return "pwned" end
    return "escaped"
  end,
}
