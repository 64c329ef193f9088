"""The base the web panels are built on (webcontrol now, webadmin later): the app factory,
sign-in, sessions, CSRF, CSP, i18n, the layout and the form/table/pagination macros.

Pages live in their own packages (altcraft/web/control/) and call the domain services through
altcraft.wiring.Platform, as the API does: no rule is implemented here a second time.
"""
