-- Records the user's intent in status.pendingAction, as `rollouts ACTION` does; the
-- controller applies it and answers in status.lastAction. Argo CD patches status
-- through the status subresource. Argo CD does not tell a script who clicked: the
-- action is recorded as user "argocd" (its audit log names the person).
local os = require("os")
local st = obj.status or {}
local function request(action, full)
  if st.pendingAction ~= nil then
    error("another action (" .. tostring(st.pendingAction.action) ..
          ") is pending; wait for the controller to apply it", 0)
  end
  local canary = st.stableRS ~= nil and st.currentPodHash ~= nil and st.stableRS ~= st.currentPodHash
  if action == "retry" then
    if st.abort ~= true then
      error("retry applies only to an aborted rollout", 0)
    end
  elseif not canary then
    error("nothing to " .. action .. ": no update is in progress (phase " ..
          tostring(st.phase or "unknown") .. ")", 0)
  elseif action == "promote" and st.abort == true and not full then
    error("the rollout is aborted; retry it first, or promote-full", 0)
  elseif action == "abort" and st.abort == true then
    error("the rollout is already aborted", 0)
  end
  local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
  obj.status = st
  obj.status.pendingAction = {
    action = action, full = full, user = "argocd", requestedAt = now,
    id = "argocd-" .. action .. "-" .. tostring(os.time()),
    -- bound to the revision shown: never applied to a newer canary
    podHash = st.currentPodHash,
  }
  return obj
end
return request("abort", false)
