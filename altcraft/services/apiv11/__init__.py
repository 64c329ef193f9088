"""The v1.1 endpoints, one module per area; importing this package registers them all."""

from altcraft.http.apiv11 import Api

api = Api()

from altcraft.services.apiv11 import admin, campaigns, profiles, senders  # noqa: E402,F401  (registration)
from altcraft.services.apiv11 import reports  # noqa: E402,F401  (registration, #5)
from altcraft.services.apiv11 import vsenders  # noqa: E402,F401  (registration)
from altcraft.services.apiv11 import triggers  # noqa: E402,F401  (registration, #15)
from altcraft.services.apiv11 import webhooks  # noqa: E402,F401  (registration, #15)
from altcraft.services.apiv11 import workflows  # noqa: E402,F401  (registration, #15)
from altcraft.services.apiv11 import audit  # noqa: E402,F401  (registration, #13)
from altcraft.services.apiv11 import mta_rules  # noqa: E402,F401  (registration, #13)
from altcraft.services.apiv11 import campaign_verbs, account_senders  # noqa: E402,F401  (registration, #16)
