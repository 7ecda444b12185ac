-- 0003: who holds a delivery claim.
--
-- A claim names its owner (one running bot process): only the owner renews it
-- (while a long upload runs), marks the render delivered or gives the claim back.

ALTER TABLE renders ADD COLUMN claimed_by TEXT;
