-- Bytecode through load("\27Lua...", nil, "b"), and any loader reachable.
return {
  id = "sec_load_bytecode", name = "load bytecode", level = "red", on = { "voucher.created" },
  check = function(v, ctx)
    local loader = load or loadstring or dofile or loadfile or require
    local f = loader("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86", "x", "b")
    return "escaped " .. tostring(f)
  end,
}
