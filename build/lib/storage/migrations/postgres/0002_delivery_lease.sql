-- 0002: delivery leases (twin of ../sqlite/0002_delivery_lease.sql).
--
-- A delivery is claimed (claimed_at) before the video is sent and marked done
-- (delivered_at) after. A process killed mid-send leaves a claim but no delivered_at:
-- once the claim's lease runs out, the next process delivers it.

ALTER TABLE renders ADD COLUMN claimed_at DOUBLE PRECISION;
