-- Argo CD health check for rollouts.dev/Rollout. Install it in argocd-cm as
--   resource.customizations.health.rollouts.dev_Rollout: |
--     <this file>
hs = {}
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollout controller to observe the Rollout"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the rollout controller to observe the latest spec"
  return hs
end
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "InvalidSpec" and c.status == "True" then
      hs.status = "Degraded"
      hs.message = c.message
      return hs
    end
  end
end
local phase = obj.status.phase
local message = obj.status.message or ""
-- blue-green: never Healthy while the active Service does not select the current revision
local bg = obj.status.blueGreen
if phase == "Healthy" and bg ~= nil and bg.activeSelector ~= obj.status.currentPodHash then
  hs.status = "Progressing"
  hs.message = "active service cutover pending"
  return hs
end
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Degraded" then
  hs.status = "Degraded"
elseif phase == "Paused" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
