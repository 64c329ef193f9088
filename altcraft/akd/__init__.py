"""akd: runs and supervises the platform's processes (Altcraft's akd; gitlab-ctl's UX)."""
