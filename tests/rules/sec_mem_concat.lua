-- Memory bomb by string concatenation.
return {
  id = "sec_mem_concat", name = "concat bomb", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local s = "0123456789abcdef"
    while true do s = s .. s end
  end,
}
