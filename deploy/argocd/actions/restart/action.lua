-- Like `rollouts restart`: spec.restartAt = now; the controller replaces every older pod,
-- one at a time, while all pods are available, and records status.restartedAt.
local os = require("os")
obj.spec.restartAt = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
