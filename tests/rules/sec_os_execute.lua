return {
  id = "sec_os_execute", name = "os.execute", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    os.execute("touch /tmp/fundwatch-pwned")
    return "escaped"
  end,
}
