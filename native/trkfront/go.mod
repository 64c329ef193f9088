module altcraft/trkfront

go 1.19
