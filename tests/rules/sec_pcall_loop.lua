-- An infinite loop that swallows every error with pcall.
return {
  id = "sec_pcall_loop", name = "pcall loop", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    while true do
      pcall(function() while true do end end)
    end
  end,
}
