-- Placeholder so that migrations stay numbered without gaps on this
-- branch; the real 0007 replaces it. It changes nothing.
SELECT 1;
