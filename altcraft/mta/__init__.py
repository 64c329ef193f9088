"""akmtad, the platform's MTA: spool, rules, SMTP delivery, DKIM."""
