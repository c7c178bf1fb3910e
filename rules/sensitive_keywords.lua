-- sensitive_keywords (orange): 支付摘要或收款人含敏感词.
--
-- Fires when the purpose or the payee_name contains a word of the list
-- named by params.words_list (default etc/lists/sensitive_words.txt) and
-- amount >= params.min (fen, default 1,000 yuan; exactly the minimum fires).
-- All matching words are named, in list-sorted order.
local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- A state's lists never change (ctx.list), so each is sorted once.
local sorted_lists = {}
local function sorted_list(ctx, name)
  local words = sorted_lists[name]
  if words == nil then
    words = sorted_keys(ctx.list(name))
    sorted_lists[name] = words
  end
  return words
end

return {
  id = "sensitive_keywords",
  name = "支付摘要含敏感词",
  level = "orange",
  on = { "voucher.created" },
  params = { words_list = "sensitive_words", min = 100000 },
  when = { amount = { ge = "min" } },
  description = "支付摘要或收款人名称含礼品、购物卡、烟、酒、会所等敏感词，且金额不低于门槛（默认 1000 元）。",
  check = function(v, ctx)
    if v.amount < ctx.params.min then
      return nil
    end
    local purpose, payee = v.purpose or "", v.payee_name or ""
    -- Most payments name no word of the list: one C search per text tells
    -- (ctx.find_word); only then are all the words looked for, in order.
    local list = ctx.params.words_list
    if ctx.find_word(purpose, list) == nil and ctx.find_word(payee, list) == nil then
      return nil
    end
    -- One search per word over both texts: list words never hold a NUL
    -- byte (etc/lists lines), so none can match across the separator.
    local text = purpose .. "\0" .. payee
    local found, contains = nil, ctx.contains
    for _, w in ipairs(sorted_list(ctx, list)) do
      if contains(text, w) then
        found = found or {}
        found[#found + 1] = w
      end
    end
    if found == nil then
      return nil
    end
    return {
      message = ("支付摘要或收款人含敏感词“%s”（摘要“%s”，收款人 %s），金额 %s 元"):format(
        table.concat(found, "、"), purpose, payee, ctx.yuan(v.amount)),
      details = { amount = v.amount, min = ctx.params.min },
    }
  end,
}
