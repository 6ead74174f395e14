-- Placeholder so that migrations stay numbered without gaps on this
-- branch; the real 0008 replaces it. It changes nothing.
SELECT 1;
