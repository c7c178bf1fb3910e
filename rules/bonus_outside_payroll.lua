-- bonus_outside_payroll (orange): 工资统发外向个人发放津补贴、奖金.
--
-- Fires when payee_type is "individual" and the purpose contains a word of
-- params.words_list (default etc/lists/bonus_words.txt: 奖/补/贴/加班/慰问).
-- There is no amount threshold.

-- A state's lists never change (ctx.list), so each is sorted once.
local sorted_lists = {}
local function sorted_list(ctx, name)
  local words = sorted_lists[name]
  if words == nil then
    words = {}
    for w in pairs(ctx.list(name)) do words[#words + 1] = w end
    table.sort(words)
    sorted_lists[name] = words
  end
  return words
end

return {
  id = "bonus_outside_payroll",
  name = "工资统发外发放津补贴",
  level = "orange",
  on = { "voucher.created" },
  params = { words_list = "bonus_words" },
  when = { payee_type = "individual" },
  description = "向个人支付且摘要含奖、补、贴、加班、慰问（津补贴未纳入工资统发）。",
  check = function(v, ctx)
    if v.payee_type ~= "individual" then
      return nil
    end
    local purpose, found = v.purpose or "", {}
    -- one C call finds whether any word is there (the usual answer: none)
    if ctx.find_word(purpose, ctx.params.words_list) == nil then
      return nil
    end
    for _, w in ipairs(sorted_list(ctx, ctx.params.words_list)) do
      if ctx.contains(purpose, w) then found[#found + 1] = w end
    end
    if #found == 0 then
      return nil
    end
    return {
      message = ("向个人 %s 支付 %s 元，摘要“%s”含“%s”，疑似在工资统发外发放津补贴"):format(
        v.payee_name or "", ctx.yuan(v.amount), purpose, table.concat(found, "、")),
      details = { amount = v.amount },
    }
  end,
}
