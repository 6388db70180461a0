"""Small task definitions the core tests build registries from."""

from pathlib import Path

SAMPLE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<casaxml xmlns="http://casa.nrao.edu/schema/psetTypes.html">
<task type="function" name="sampletask" category="testing, almatools">
  <shortdescription>A sample task exercising the XML dialect</shortdescription>
  <description>Long description of the sample task.</description>
  <input>
    <param type="path" name="vis" mustexist="true">
      <shortdescription>Input MeasurementSet</shortdescription>
      <description>Name of the input visibility file.</description>
      <value></value>
    </param>
    <param type="string" name="mode" ignorecase="true">
      <shortdescription>What to do</shortdescription>
      <description>summary or get.</description>
      <value>summary</value>
      <allowed kind="enum"><value>summary</value><value>get</value></allowed>
    </param>
    <param type="string" name="hdkey" subparam="true">
      <shortdescription>Keyword to get</shortdescription>
      <description>Only with mode='get'.</description>
      <value></value>
    </param>
    <param type="int" name="niter">
      <shortdescription>Iterations</shortdescription>
      <description>Non-negative.</description>
      <value>10</value>
      <allowed kind="range"><value range="min">0</value><value range="max">1000</value></allowed>
    </param>
    <param type="double" name="threshold">
      <shortdescription>Threshold in Jy</shortdescription>
      <description>A number.</description>
      <value>0.5</value>
    </param>
    <param type="bool" name="verbose">
      <shortdescription>Say more</shortdescription>
      <description>A boolean.</description>
      <value>False</value>
    </param>
    <param type="intVec" name="spws">
      <shortdescription>Spectral windows</shortdescription>
      <description>A list of integers.</description>
      <value><value>0</value><value>1</value></value>
    </param>
    <param type="any" name="fitspec">
      <shortdescription>String or record</shortdescription>
      <description>Either type.</description>
      <type>string</type><type>record</type>
      <value type="string"></value>
    </param>
    <param type="record" name="options">
      <shortdescription>Extra options</shortdescription>
      <description>A dictionary.</description>
      <value type="record"/>
    </param>
    <constraints>
      <when param="mode">
        <equals value="get"><default param="hdkey"><value type="string">beammajor</value></default></equals>
      </when>
    </constraints>
  </input>
  <returns type="record"/>
  <example>sampletask(vis='x.ms', mode='get')</example>
</task>
</casaxml>
"""


def sampletask(vis, mode, hdkey, niter, threshold, verbose, spws, fitspec, options):
    """Echo what it was called with (the core's behaviour is what is tested)."""
    return dict(vis=vis, mode=mode, hdkey=hdkey, niter=niter, threshold=threshold, verbose=verbose,
                spws=spws, fitspec=fitspec, options=options)


def write_sample(tmp_path: Path, text: str = SAMPLE_XML, name: str = "sampletask.xml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
