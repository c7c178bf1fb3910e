-- Each `..` of a long string is one instruction but copies a megabyte.
return {
  id = "sec_copy_loop", name = "copy loop", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local s = "0123456789abcdef"
    for _ = 1, 16 do s = s .. s end          -- 1 MiB
    for _ = 1, 1e9 do local t = s .. "y" end
    return "escaped"
  end,
}
