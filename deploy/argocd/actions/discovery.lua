-- Argo CD resource actions for rollouts.dev/Rollout: which ones apply now.
-- The same rules as `rollouts promote|abort|retry` (rollouts/api/actions.py); the
-- controller checks again when it applies the action and records a refusal in
-- status.lastAction and a Warning Event.
local actions = {}
local st = obj.status or {}
local canary = st.stableRS ~= nil and st.currentPodHash ~= nil and st.stableRS ~= st.currentPodHash
local pending = st.pendingAction ~= nil
local aborted = st.abort == true
actions["promote"] = {["disabled"] = pending or not canary or aborted,
                      ["iconClass"] = "fa fa-fw fa-forward"}
actions["promote-full"] = {["disabled"] = pending or not canary,
                           ["iconClass"] = "fa fa-fw fa-fast-forward"}
actions["abort"] = {["disabled"] = pending or not canary or aborted,
                    ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["retry"] = {["disabled"] = pending or not aborted,
                    ["iconClass"] = "fa fa-fw fa-redo-alt"}
actions["restart"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-sync"}
return actions
