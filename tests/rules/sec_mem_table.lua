-- Memory bomb by table growth (errors swallowed).
return {
  id = "sec_mem_table", name = "table bomb", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local t = {}
    pcall(function()
      local i = 0
      while true do i = i + 1; t[i] = { i, i, i, i } end
    end)
    return "escaped " .. #t
  end,
}
