-- Reserved: migration 0007 is another change's. This placeholder keeps the
-- numbering without gaps until it lands, and changes nothing.
SELECT 1;
