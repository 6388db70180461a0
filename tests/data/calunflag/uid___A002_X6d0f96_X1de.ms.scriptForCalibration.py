# -*- coding: latin-1 -*-
# Calibración manual del SB TW_Hya_a_07_TE (Ciclo 1), revisada a mano.
# Überprüfung der Phasenkalibration: siehe QA2-Bericht.

thesteps = []
step_title = {0: 'Import of the ASDM',
              1: 'A priori flagging',
              2: 'Split out science SPWs and time average',
              3: 'Listobs, and save original flags',
              4: 'Initial flagging',
              5: 'Putting a model for the flux calibrator(s)',
              6: 'Bandpass calibration',
              7: 'Gain calibration'}

try:
  print 'List of steps to be executed ...', mysteps
  thesteps = mysteps
except:
  print 'global variable mysteps not set.'
if (thesteps==[]):
  thesteps = range(0,len(step_title))
  print 'Executing all steps: ', thesteps

import re

if re.search('^4.2.2', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 4.2.2')

# CALIBRATE_AMPLI: Ceres
# CALIBRATE_ATMOSPHERE: 3c279,Ceres,J1037-295,TW_Hya
# CALIBRATE_BANDPASS: 3c279
# CALIBRATE_FLUX: Ceres
# CALIBRATE_FOCUS: 
# CALIBRATE_PHASE: J1037-295
# CALIBRATE_POINTING: 3c279,J1037-295
# OBSERVE_TARGET: TW_Hya

# Using reference antenna = DV08

asdm = 'uid___A002_X6d0f96_X1de'
visSplit = asdm + '.ms.split'
bpCalName = '3c279'
fluxCalName = 'Ceres'
phaseCalName = 'J1037-295 '
calFields = ','.join([bpCalName, fluxCalName, phaseCalName.strip()])

# Initial flagging
mystep = 4
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  # Línea de absorción en el calibrador de fase (CO 2-1), ver el informe QA2
  flagdata(vis = visSplit, mode = 'manual', field = phaseCalName.strip(), spw = '1:1910~1930', flagbackup = F)

  # Líneas atmosféricas de Ceres (agua): ¡no son del modelo!
  flagdata(vis = visSplit,
    mode = 'manual',
    field = 'Ceres',
    spw = '0:100~140',
    flagbackup = F)

  # Kanäle mit Störung im Zielfeld (TW_Hya), nicht entfernen
  flagdata(vis = visSplit, mode = 'manual', field = 'TW_Hya', spw = '2:3000~3010', flagbackup = F)

  flagdata(vis = visSplit, mode = 'manual', field = 'J1037-295', spw = '3:200~210', flagbackup = F)

# Putting a model for the flux calibrator(s)
mystep = 5
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  setjy(vis = visSplit, field = fluxCalName, standard = 'Butler-JPL-Horizons 2012')

# Bandpass calibration
mystep = 6
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  bandpass(vis = visSplit, caltable = visSplit+'.bandpass', field = bpCalName, solint = 'inf', combine = 'scan',
    refant = 'DV08', solnorm = T, bandtype = 'B')

# Gain calibration
mystep = 7
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step ', mystep, step_title[mystep]

  gaincal(vis = visSplit, caltable = visSplit+'.phase_int', field = calFields, solint = 'int', refant = 'DV08',
    gaintype = 'G', calmode = 'p', gaintable = visSplit+'.bandpass')

  gaincal(vis = visSplit, caltable = visSplit+'.ampli_inf', field = phaseCalName.replace(' ', ''), solint = 'inf',
    refant = 'DV08', gaintype = 'T', calmode = 'a', gaintable = [visSplit+'.bandpass', visSplit+'.phase_int'])

  fluxscale(vis = visSplit, caltable = visSplit+'.ampli_inf', fluxtable = visSplit+'.flux_inf',
    reference = fluxCalName, transfer = ','.join([bpCalName, phaseCalName]).split(','))
