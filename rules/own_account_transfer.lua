-- own_account_transfer (orange): 同户名转账、向本单位实有资金账户划转.
--
-- Reading: payee_type "own_unit", or a payee_name equal to payer_name (when
-- given) or to unit_name.  Names are compared after trimming surrounding
-- white space (ASCII and the full-width space); payer_name is optional.

-- Trims ASCII white space and the full-width space U+3000 (E3 80 80) from
-- both ends, without Lua patterns (names are free text of any length).
local function trim(s)
  s = s or ""
  -- Most names have nothing to trim: neither end is white space (bytes up
  -- to 32 here) nor part of U+3000 (which starts with 227, ends with 128).
  local first, last = s:byte(1), s:byte(-1)
  if first ~= nil and first > 32 and first ~= 227 and last > 32 and last ~= 128 then
    return s
  end
  local i, j = 1, #s
  while true do
    local b = s:byte(i)
    if i <= j and (b == 32 or (b and b >= 9 and b <= 13)) then
      i = i + 1
    elseif i + 2 <= j and s:sub(i, i + 2) == "\227\128\128" then
      i = i + 3
    else
      break
    end
  end
  while true do
    local b = s:byte(j)
    if j >= i and (b == 32 or (b and b >= 9 and b <= 13)) then
      j = j - 1
    elseif j - 2 >= i and s:sub(j - 2, j) == "\227\128\128" then
      j = j - 3
    else
      break
    end
  end
  return s:sub(i, j)
end

return {
  id = "own_account_transfer",
  name = "同户名转账或向本单位账户划转",
  level = "orange",
  on = { "voucher.created" },
  params = {},
  description = "收款人类型为本单位账户，或收款人名称与付款人名称、预算单位名称相同。",
  check = function(v, ctx)
    local payee = trim(v.payee_name)
    local why
    if v.payee_type == "own_unit" then
      why = "收款人为本单位账户"
    elseif payee ~= "" and payee == trim(v.payer_name) then
      why = "收款人名称与付款人名称相同"
    elseif payee ~= "" and payee == trim(v.unit_name) then
      why = "收款人名称与预算单位名称相同"
    else
      return nil
    end
    return {
      message = ("%s（%s），支付金额 %s 元"):format(why, payee, ctx.yuan(v.amount)),
      details = { amount = v.amount, payee_type = v.payee_type },
    }
  end,
}
