return {
  id = "sec_io_open", name = "io.open", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local f = io.open("/etc/passwd")
    return "escaped " .. f:read("a")
  end,
}
