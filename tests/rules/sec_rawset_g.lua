-- rawset on the globals / library tables, to poison later calls.
return {
  id = "sec_rawset_g", name = "rawset", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    rawset(_G or _ENV, "string", nil)
    return "escaped"
  end,
}
