-- Managed by mailstack (roles/rspamd.py).

-- A logged-in user sends only as the envelope sender Postfix has checked against the login
-- (reject_sender_login_mismatch with the account data's sender_logins), so the header From must
-- be exactly that address: one From header, one address in it, no other address in its display
-- name. Anything else is refused before the message is accepted (force_actions.conf), so no one
-- can send, and have signed, mail in another tenant's or the operator's name.
local ADDRESS_IN_TEXT = "[^%s<>\"'(),;:]+@[^%s<>\"'(),;:]+"

rspamd_config:register_symbol({
  name = "MAILSTACK_FROM_NOT_SENDER",
  score = 0.0,
  group = "mailstack",
  description = "Authenticated mail whose From header is not the envelope sender the login owns",
  callback = function(task)
    if not task:get_user() then
      return false
    end
    local envelope = task:get_from("smtp")
    local sender = (envelope and envelope[1] and envelope[1].addr or ""):lower()
    local headers = task:get_header_full("From") or {}
    if #headers ~= 1 then
      return true, string.format("%d From headers", #headers)
    end
    local from = task:get_from("mime") or {}
    if #from ~= 1 then
      return true, string.format("%d addresses in From", #from)
    end
    local address = (from[1].addr or ""):lower()
    if address == "" or address ~= sender then
      return true, "From " .. address
    end
    for claimed in (from[1].name or ""):gmatch(ADDRESS_IN_TEXT) do
      if claimed:lower() ~= sender then
        return true, "display name " .. claimed
      end
    end
    return false
  end,
})
