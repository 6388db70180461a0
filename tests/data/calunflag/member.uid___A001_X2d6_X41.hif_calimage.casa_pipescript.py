__rethrow_casa_exceptions = True
h_init()
try:
    hifa_importdata (vis=['uid___A002_Xa1b2c3_X1f'], session=['session_1'])
    hifa_flagdata(pipelinemode="automatic")
    hif_fluxcalflag(pipelinemode="automatic")
#    hifa_fluxcalflag(pipelinemode="automatic")
    hif_rawflagchans(pipelinemode="automatic")
    hif_refant(pipelinemode="automatic")
    hif_setjy(pipelinemode="automatic")
finally:
    h_save()
