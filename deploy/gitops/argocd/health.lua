-- Argo CD health check for together.ai/TogetherEndpoint (Lua 5.1, as Argo CD runs it).
-- It reads the operator's kstatus-style conditions, and only those that describe the current
-- generation: a condition written for an older spec says nothing about the one just synced.
-- In this order:
--   Progressing  being deleted (the operator deletes the remote endpoint first)
--   Suspended    paused with the together.ai/paused annotation (no Together API calls)
--   Degraded     Stalled=True: progress needs a human; the message says what to do
--   Progressing  Reconciling=True
--   Suspended    Ready=True while stopped on purpose (spec.state Stopped, or the inactivity timeout)
--   Healthy      Ready=True and serving
--   Progressing  otherwise: no conditions for this generation yet, or Ready=False for another reason
local hs = {}

local function current(condition)
  if condition.observedGeneration == nil or obj.metadata.generation == nil then
    return true
  end
  return condition.observedGeneration == obj.metadata.generation
end

local conditions = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if current(condition) then
      conditions[condition.type] = condition
    end
  end
end

local function message(condition, fallback)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end

local annotations = obj.metadata.annotations or {}
local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]
local ready = conditions["Ready"]

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting the remote endpoint"
elseif annotations["together.ai/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the together.ai/paused annotation: no Together API calls"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(stalled, "Stalled")
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message(reconciling, "Reconciling")
elseif ready ~= nil and ready.status == "True" then
  local stopped = ready.reason == "Stopped" or ready.reason == "AutoStopped"
  if stopped or (obj.spec ~= nil and obj.spec.state == "Stopped") then
    hs.status = "Suspended"
  else
    hs.status = "Healthy"
  end
  hs.message = message(ready, "Ready")
elseif ready ~= nil then
  hs.status = "Progressing"
  hs.message = message(ready, "Not ready yet")
else
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report on this generation"
end
return hs
